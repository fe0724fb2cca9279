// The one budgets module: meets() names each failing budget with its shortfall, the one schema
// (config, MQTT arguments and payloads) knows sizeMb, and profiles / layers / relative budgets
// resolve the same way for the search and the agent.
import t from 'tap';
import {
  BUDGET_KEYS,
  LATENCY_STATISTIC,
  budgetsSchema,
  latencyBudgetMs,
  latencyOf,
  latencyOfRuns,
  meets,
  mergeBudgets,
  profileBudgets,
} from '../../src/budgets/index.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { validate } from '../../src/config/validate.js';
import { adaptMetrics } from '../../src/dashboard/adapt.js';
import { violationScore } from '../../src/dashboard/model.js';
import { SimDevice } from '../../devkit/sim.js';
import { validateAction } from '../../src/dashboard/validate.js';
import { checkArgs, checkPayload } from '../../src/telemetry/index.js';

const all = { latencyMs: 50, ramMb: 100, minFidelity: 0.9, sizeMb: 2 };
const good = { latencyMs: 40, ramMb: 80, fidelity: 0.95, sizeMb: 1.5 };

t.test('meets: everything within budget', async (t) => {
  const v = meets(good, all);
  t.ok(v.ok);
  t.same(v.met, { latency: true, ram: true, fidelity: true, size: true });
  t.same(v.shortfall, {});
  t.same(v.relative, { latency: 0, ram: 0, fidelity: 0, size: 0 });
});

t.test('meets: each budget failing alone, with its shortfall', async (t) => {
  const cases = [
    { key: 'latency', m: { latencyMs: 60 }, short: { latencyMs: 10 }, rel: 0.2 },
    { key: 'ram', m: { ramMb: 125 }, short: { ramMb: 25 }, rel: 0.25 },
    { key: 'fidelity', m: { fidelity: 0.81 }, short: { fidelity: 0.09 }, rel: 0.1 },
    { key: 'size', m: { sizeMb: 3 }, short: { sizeMb: 1 }, rel: 0.5 },
  ] as const;
  for (const c of cases) {
    const v = meets({ ...good, ...c.m }, all);
    t.notOk(v.ok, `${c.key} fails`);
    for (const k of BUDGET_KEYS) t.equal(v.met[k], k !== c.key, `${c.key} alone: ${k} ${k === c.key ? 'missed' : 'met'}`);
    t.same(Object.keys(v.shortfall), Object.keys(c.short), `only the ${c.key} shortfall`);
    for (const [k, x] of Object.entries(c.short))
      t.ok(Math.abs(v.shortfall[k as keyof typeof v.shortfall]! - x) < 1e-9, `${k} short by ${x}`);
    t.ok(Math.abs(v.relative[c.key] - c.rel) < 1e-9, `${c.key} ${c.rel * 100} % over`);
  }
});

t.test('meets: no budget or no measurement means not judged (null), never a failure', async (t) => {
  const v = meets({ latencyMs: 1e9, ramMb: null }, { ramMb: 10 });
  t.same(v.met, { latency: null, ram: null, fidelity: null, size: null });
  t.ok(v.ok);
  // a budget exactly met is met
  t.ok(meets({ latencyMs: 50, fidelity: 0.9 }, { latencyMs: 50, minFidelity: 0.9 }).ok);
});

t.test('relative latency budgets resolve against the measured original', async (t) => {
  t.equal(latencyBudgetMs({ latencyFactor: 0.5 }, 80), 40);
  t.equal(latencyBudgetMs({ latencyFactor: 0.5 }), null, 'original not measured yet');
  t.equal(latencyBudgetMs({ latencyMs: 30 }, 80), 30);
  t.equal(latencyBudgetMs({ ramMb: 1 }, 80), null);
  const v = meets({ latencyMs: 45 }, { latencyFactor: 0.5 }, 80);
  t.equal(v.met.latency, false);
  t.equal(v.shortfall.latencyMs, 5);
  t.equal(meets({ latencyMs: 45 }, { latencyFactor: 0.5 }).met.latency, null, 'unresolvable: not judged');
});

t.test('one latency statistic: the p50 of entries and of runs', async (t) => {
  t.equal(LATENCY_STATISTIC, 'p50');
  t.equal(latencyOf({ latencyP50Ms: 10, latencyP95Ms: 30 }), 10);
  t.equal(latencyOf({ latencyP50Ms: null, latencyP95Ms: null }), null);
  t.equal(latencyOfRuns({ p50: 7, p95: 20 }), 7);
});

t.test('board profile budgets and layering', async (t) => {
  t.same(profileBudgets({ latency: '0.5x', ramMb: 512, minFidelity: 0.97 }), { latencyFactor: 0.5, ramMb: 512, minFidelity: 0.97 });
  t.same(profileBudgets({ latencyMs: 30, ramMb: 64, minFidelity: 0.9 }), { latencyMs: 30, ramMb: 64, minFidelity: 0.9 });
  t.throws(() => profileBudgets({ latency: 'fast', ramMb: 64, minFidelity: 0.9 }), { code: 'CONFIG' });
  // profile < config < command: a later latency of either form replaces both
  t.same(mergeBudgets({ latencyFactor: 0.5, ramMb: 100 }, undefined, { sizeMb: 3 }, { latencyMs: 20 }), {
    ramMb: 100,
    sizeMb: 3,
    latencyMs: 20,
  });
  t.same(mergeBudgets({ latencyMs: 20 }, { latencyFactor: 0.4, latencyMs: undefined }), { latencyFactor: 0.4 });
});

t.test('the one schema has every field, sizeMb included, wherever budgets are checked', async (t) => {
  t.same(Object.keys(budgetsSchema.properties).sort(), ['latencyFactor', 'latencyMs', 'minFidelity', 'ramMb', 'sizeMb']);
  t.ok(validate(budgetsSchema, { sizeMb: 1.5 }).ok);
  const bad = validate(budgetsSchema, { sizeMb: 0 });
  t.notOk(bad.ok);
  if (!bad.ok)
    t.same(
      bad.errors.map((e) => e.path),
      ['sizeMb'],
    );
  // MQTT: set-budget and fit arguments, the retained profile payload
  t.same(checkArgs('set-budget', { sizeMb: 2 }), { sizeMb: 2 });
  t.throws(() => checkArgs('set-budget', { sizeMb: -1 }), { code: 'DATA', message: /sizeMb/ });
  t.throws(() => checkArgs('set-budget', { sizeMb: 'small' }), { code: 'DATA', message: /sizeMb/ });
  t.same(checkArgs('fit', { budgets: { sizeMb: 2, latencyFactor: 0.5 } }), { budgets: { sizeMb: 2, latencyFactor: 0.5 } });
  t.throws(() => checkArgs('fit', { budgets: { sizeMb: 0 } }), { code: 'DATA' });
  const profile = { v: 1, deviceId: 'd', ts: '2026-01-01T00:00:00.000Z', profile: 'generic-x86_64', hardwareHash: 'h', hardware: {} };
  t.doesNotThrow(() => checkPayload('profile', { ...profile, budgets: { latencyFactor: 0.5, sizeMb: 4 } }));
  t.throws(() => checkPayload('profile', { ...profile, budgets: { sizeMb: 0 } }), { code: 'DATA' });
  t.throws(() => checkArgs('set-budget', { sizeMB: 2 }), { code: 'DATA', message: /sizeMB/ }, 'a misspelt field is refused');
  // the agent config file
  t.equal(loadAgentConfig({ flags: { budgets: { sizeMb: 5 } } }).budgets.sizeMb, 5);
  t.throws(() => loadAgentConfig({ flags: { budgets: { sizeMb: 0 } } }), { code: 'CONFIG', message: /budgets\.sizeMb/ });
});

t.test('the dashboard: set-budget with sizeMb through the one schema; metrics carry it; violations as meets() says', async (t) => {
  t.same(validateAction('set-budget', { sizeMb: 3, latencyMs: '' }), { verb: 'set-budget', args: { sizeMb: 3 } });
  t.throws(() => validateAction('set-budget', { sizeMb: 0 }), { code: 'USAGE', message: /sizeMb/ });
  const m = new SimDevice(1, { broker: 'mqtt://127.0.0.1:1', prefix: 'edgefit', rate: 1 }).metricsPayload();
  m.budgets = { ...m.budgets, sizeMb: 3 };
  t.doesNotThrow(() => checkPayload('metrics', m), 'a metrics payload with a size budget is valid');
  const a = adaptMetrics(m, Date.now());
  t.equal(a.budgets.sizeMb, 3);
  t.equal(a.point.latencyMs, latencyOf(m.model), 'the chart shows the judged statistic');
  const p = { ts: 0, latencyMs: 120, latencyP95Ms: 500, ramMb: 40, tempC: null, cpuLoad: null, fidelity: 0.85 };
  t.ok(
    Math.abs(violationScore({ latencyMs: 100, ramMb: 50, minFidelity: 0.9 }, p, {}) - 0.2) < 1e-9,
    'worst relative miss: latency 20 % over',
  );
  t.equal(violationScore({ latencyMs: 200 }, p, {}), 0, 'judged on the p50, not the p95');
});
