// Budgets in range everywhere they come in (issue 20: `fit --latency-ms -1` was accepted): the
// CLI's flags through checkBudgets, the agent config, and the fit / set-budget command arguments
// through the one schema; every budget is above 0 and at most its maximum, a fidelity floor in (0, 1].
import t from 'tap';
import { BUDGET_MAX, budgetsSchema, checkBudgets } from '../../src/budgets/index.js';
import { cliMessage } from '../../src/cli/output.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { checkArgs } from '../../src/telemetry/index.js';

const BAD = [
  ['latencyMs', -1],
  ['latencyMs', 0],
  ['latencyMs', BUDGET_MAX.latencyMs + 1],
  ['latencyFactor', -0.5],
  ['ramMb', 0],
  ['ramMb', -100],
  ['minFidelity', 0],
  ['minFidelity', -0.1],
  ['minFidelity', 1.01],
  ['sizeMb', -2],
] as const;

t.test('checkBudgets: a usage error naming the budget and its flag', async (t) => {
  const ok = { latencyMs: 50, ramMb: 100, minFidelity: 1, sizeMb: 2 };
  t.same(checkBudgets(ok), ok);
  t.same(checkBudgets({ latencyFactor: 0.5, latencyMs: undefined }), { latencyFactor: 0.5, latencyMs: undefined });
  for (const [k, v] of BAD) t.throws(() => checkBudgets({ [k]: v }), { code: 'USAGE' }, `${k} ${v}`);
  t.throws(() => checkBudgets({ latencyMs: NaN }), { code: 'USAGE' }, 'NaN (yargs: --latency-ms abc)');
  t.throws(() => checkBudgets({ ramMb: Infinity }), { code: 'USAGE' });
  const e = t.throws(() => checkBudgets({ latencyMs: -1 }));
  t.equal(cliMessage(e), 'the latency budget (ms) must be above 0 and at most 3600000, got -1 (--latency-ms)');
  t.match(cliMessage(t.throws(() => checkBudgets({ minFidelity: 0 }))), /fidelity floor .* \(--min-fidelity\)$/);
});

t.test('the schema refuses the same values: agent config, set-budget and fit arguments', async (t) => {
  t.same(budgetsSchema.properties.minFidelity, { type: 'number', exclusiveMinimum: 0, maximum: 1 });
  for (const [k, v] of BAD) {
    t.throws(() => checkArgs('set-budget', { [k]: v }), { code: 'DATA', message: new RegExp(k) }, `set-budget ${k} ${v}`);
    t.throws(() => checkArgs('fit', { budgets: { [k]: v } }), { code: 'DATA' }, `fit ${k} ${v}`);
    t.throws(() => loadAgentConfig({ flags: { budgets: { [k]: v } } }), { code: 'CONFIG', message: new RegExp(`budgets\\.${k}`) });
  }
  t.same(checkArgs('set-budget', { minFidelity: 1 }), { minFidelity: 1 });
  t.same(checkArgs('set-budget', { latencyMs: 0.5 }), { latencyMs: 0.5 });
});
