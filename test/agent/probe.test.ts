// Live latency probes run in a child: the agent process never maps onnxruntime, a probe child
// exits after each probe, a broken model or a hung probe fails the probe and leaves nothing
// behind, and the probe rate backs off so probing stays under its CPU cap.
import t from 'tap';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { cleanupDir } from '../../devkit/broker.js';
import { Adaptation } from '../../src/agent/index.js';
import { AgentBus } from '../../src/agent/bus.js';
import { Prober } from '../../src/agent/prober.js';
import type { FrontierEntry } from '../../src/fit/types.js';
import { LatencyProbe } from '../../src/agent/latency.js';
import { loadAgentConfig } from '../../src/config/agent.js';

const shapes = { x: [1, 3, 48, 192] };
const dir = mkdtempSync(join(tmpdir(), 'edgefit-probe-'));
t.teardown(() => cleanupDir(dir));
const ortMapped = (): boolean => /onnxruntime/.test(readFileSync('/proc/self/maps', 'utf8'));
const childrenOfMe = (): number[] => {
  const out: number[] = [];
  for (const line of readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/))
    if (line) out.push(Number(line));
  return out;
};

t.test('probe in a child: stats and costs, no onnxruntime here, no child left', async (t) => {
  const p = new LatencyProbe();
  await p.load(CLS_MODEL, shapes, 1);
  t.ok(p.loaded);
  t.ok(p.modelRssMb > 0, `model RAM cost ${p.modelRssMb} MiB measured in the child`);
  const s = await p.measure(7);
  t.equal(s.runs, 7);
  t.ok(s.p50 > 0 && s.p95 >= s.p50, `p50 ${s.p50} ms, p95 ${s.p95} ms`);
  const c = p.lastCost!;
  t.ok(c.cpuMs > 0 && c.wallMs > 0, `probe cost: ${c.cpuMs} ms CPU, ${c.wallMs} ms wall`);
  t.ok(c.peakRssMb > p.modelRssMb, `child peak RSS ${c.peakRssMb} MiB covers the model's ${p.modelRssMb} MiB`);
  t.same(childrenOfMe(), [], 'the probe child has exited');
  t.notOk(ortMapped(), 'onnxruntime is not loaded in this process');
  await p.close();
  t.notOk(p.loaded);
  await t.rejects(p.measure(1), /no model loaded/);
});

t.test('a model that does not load fails the probe, nothing is kept', async (t) => {
  const bad = join(dir, 'bad.onnx');
  writeFileSync(bad, 'not a model');
  const p = new LatencyProbe();
  await t.rejects(p.load(bad, shapes, 1), { code: 'EVAL', message: /onnxruntime/ });
  t.notOk(p.loaded);
  t.same(childrenOfMe(), []);
});

t.test('a model that does not load over one that did: the one before stays loaded and probed', async (t) => {
  const bad = join(dir, 'bad2.onnx');
  writeFileSync(bad, readFileSync(CLS_MODEL).subarray(0, 5000));
  const p = new LatencyProbe();
  t.teardown(() => p.close());
  await p.load(CLS_MODEL, shapes, 1);
  const rss = p.modelRssMb;
  await t.rejects(p.load(bad, shapes, 1), { code: 'EVAL', message: /onnxruntime/ });
  t.ok(p.loaded, 'still loaded');
  t.equal(p.modelRssMb, rss, 'with the RAM cost of the model before');
  t.equal((await p.measure(2)).runs, 2, 'and probes run on it');
  t.same(childrenOfMe(), []);
});

t.test('a probe over its time limit is killed', async (t) => {
  const p = new LatencyProbe(50);
  await t.rejects(p.load(CLS_MODEL, shapes, 1), { code: 'EVAL', message: /did not finish within 50 ms/ });
  t.same(childrenOfMe(), []);
});

t.test('the agent module graph does not load onnxruntime; probes back off to their CPU cap', async (t) => {
  t.notOk(ortMapped(), 'importing the agent did not map onnxruntime');
  const source = new LatencyProbe();
  const adaptation = new Adaptation(3, 5, 0.9);
  const cfg = loadAgentConfig({ flags: { probe: { intervalS: 30, maxCpuPercent: 2 } } });
  const prober = new Prober({
    bus: new AgentBus(),
    source,
    adaptation,
    probe: cfg.probe,
    shapes,
    threads: () => 1,
    fits: { current: () => undefined, level: () => null, frontier: () => [] },
    budgets: () => ({}),
    step: async () => undefined,
    log: () => undefined,
  });
  t.equal(prober.nextProbeDelayMs(), 30_000, 'no probe yet: the interval');
  source.lastCost = { cpuMs: 300, wallMs: 400, peakRssMb: 90, loadMs: 50 };
  t.equal(prober.nextProbeDelayMs(), 30_000, '0.3 s of CPU every 30 s is 1%: the interval');
  source.lastCost = { cpuMs: 3000, wallMs: 3500, peakRssMb: 200, loadMs: 900 };
  t.equal(prober.nextProbeDelayMs(), 150_000, '3 s of CPU at 2% needs 150 s between probes');
  const frontier = [{ latencyP50Ms: 10 }, { latencyP50Ms: 5 }] as FrontierEntry[];
  adaptation.observe(20, 15, frontier, 0, 0);
  t.equal(prober.nextProbeDelayMs(), 30_000, 'a probe over budget is confirmed at the plain interval');
  adaptation.observe(12, 15, frontier, 0, 0);
  t.equal(prober.nextProbeDelayMs(), 150_000, 'back under budget: back to the cap');
  t.equal(loadAgentConfig({}).probe.maxCpuPercent, 1, 'default cap: 1% of a core');
});
