// Step-down under load: a two-level frontier of real models (PP-OCR cls and a 60% channel-
// pruned copy made by `edgefit prune`), budget = 2x the big model's quiet p50; busy child
// processes load the CPU until the live probes break the budget and the agent steps down.
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { CLI } from '../../devkit/paths.js';
import { Agent } from '../../src/agent/index.js';
import { LatencyProbe } from '../../src/agent/latency.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import type { Fitter, FrontierEntry } from '../../src/fit/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-step-'));
const small = join(dir, 'cls-p60.onnx');
execFileSync(process.execPath, [CLI, 'prune', CLS_MODEL, '-o', small, '--structured', '0.6', '--shape', 'x=1x3x48x192'], { stdio: 'ignore' });
const shapes = { x: [1, 3, 48, 192] };

async function measure(id: string, path: string): Promise<FrontierEntry> {
  const p = new LatencyProbe();
  await p.load(path, shapes, 1);
  const l = await p.measure(30);
  await p.close();
  return { id, config: { structured: id === 'big' ? 0 : 0.6, unstructured: 0, quant: 'none', threads: 1 }, modelPath: path,
    sha256: createHash('sha256').update(readFileSync(path)).digest('hex'), sizeBytes: statSync(path).size,
    latencyP50Ms: l.p50, latencyP95Ms: l.p95, modelRssMb: p.modelRssMb, fidelity: id === 'big' ? 1 : 0.97, meets: { latency: true, ram: true, fidelity: true } };
}
const big = await measure('big', CLS_MODEL);
const little = await measure('small', small);
const budgetMs = Math.max(2 * big.latencyP50Ms, 1.2 * little.latencyP50Ms);
// a test fitter: real measurements of two real models, chosen = the big one (it met the budget when fitted)
const fitter: Fitter = async () => ({ chosenId: 'big', frontier: [big, little], referenceLatencyP50Ms: big.latencyP50Ms, fitter: 'test-two-level' });

const broker = await startBroker();
const dev = 'dev-step';
const pre = `edgefit/${dev}/`;
const w = await Watcher.connect(broker.url, [`${pre}events`]);
const busy: ChildProcess[] = [];
const agent = new Agent(loadAgentConfig({ flags: {
  deviceId: dev, stateDir: join(dir, 'state'), model: { path: CLS_MODEL, shapes }, budgets: { latencyMs: budgetMs }, threads: 1,
  metricsIntervalS: 1, probe: { intervalS: 0.5, runs: 5, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 }, mqtt: { url: broker.url },
} }), { fitter, log: () => undefined });
t.teardown(async () => {
  for (const b of busy) b.kill('SIGKILL');
  await agent.stop();
  await w.close();
  await broker.stop();
  cleanupDir(dir);
});

t.test('steps down the frontier when the box gets slower, and reports it', async (t) => {
  t.comment(`big p50 ${big.latencyP50Ms} ms, small p50 ${little.latencyP50Ms} ms, budget ${budgetMs.toFixed(3)} ms`);
  await agent.start();
  await w.waitFor((m) => m.json().type === 'deployed' && m.json().data.candidateId === 'big', 60_000, 0, 'big deployed');
  const from = w.msgs.length;
  for (let i = 0; i < 8; i++) busy.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const ev = await w.waitFor((m) => m.json().type === 'stepped-down', 90_000, from, 'stepped-down');
  t.match(ev.json().data, { from: 'big', to: 'small', fromLevel: 0, toLevel: 1 });
  t.ok(ev.json().data.liveP50Ms > budgetMs, `live p50 ${ev.json().data.liveP50Ms} ms broke the budget`);
  t.equal(agent.level(), 1);
  for (const b of busy.splice(0)) b.kill('SIGKILL');
  t.comment('load removed; waiting for step-up');
  const up = await w.waitFor((m) => m.json().type === 'stepped-up', 90_000, from, 'stepped-up');
  t.match(up.json().data, { from: 'small', to: 'big' });
});
