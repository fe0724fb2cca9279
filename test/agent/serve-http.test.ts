// The agent serves what it deploys (issue 19), end to end: a real agent (real broker, the real
// forked serve process on a free port and <state>/serve.sock, real probe children) on PP-OCR cls
// and a byte-different copy of it as a two-level frontier. An application's HTTP infer gets
// outputs with the version and level that produced them; a deploy changes what answers and what
// current.onnx holds; and when the application's requests get slow (it starts sending batches of
// 16 images to the model's dynamic batch dim: a real, deterministic slow-down, unlike CPU load on
// a shared box), the served run p50 steps the agent down, and back up once it sends single images.
import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, cleanupDir } from '../../devkit/broker.js';
import { ROOT } from '../../devkit/paths.js';
import { closeClients, infer } from '../../devkit/serve-client.js';
import { Watcher } from '../helpers/mqtt-watch.js';
import { makeOperator } from '../helpers/operator.js';
import { CLS_MODEL } from '../helpers/agent-proc.js';
import { Agent } from '../../src/agent/index.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { imageInput } from '../../devkit/calib.js';
import type { Fitter, FrontierEntry } from '../../src/fit/types.js';
import { parseModel, serializeModel } from '../../src/onnx/index.js';
import { ServeProcess } from '../../src/serve/process.js';
import type { ServeStats } from '../../src/serve/types.js';

const dir = mkdtempSync(join(tmpdir(), 'edgefit-serve-http-'));
// state-changing commands are signed by a pinned operator key (issue 20)
const op = makeOperator(join(dir, 'op'));
const broker = await startBroker();
t.teardown(async () => {
  closeClients();
  await broker.stop();
  cleanupDir(dir);
});

const clsDir = join(ROOT, 'test/fixtures/ocr/cls');
const x = imageInput(join(clsDir, '0/page-01.png'), clsDir);
const SHAPES = { x: [1, 3, 48, 192] };
/** The same image 16 times: cls's batch dim is dynamic, so these run ~16x longer. */
const BATCH = 16;
const x16 = (() => {
  const data = new Float32Array(x.data.length * BATCH);
  for (let i = 0; i < BATCH; i++) data.set(x.data as Float32Array, i * x.data.length);
  return { dtype: x.dtype, shape: [BATCH, ...x.shape.slice(1)], data };
})();

function entry(id: string, path: string, structured: number): FrontierEntry {
  const bytes = readFileSync(path);
  return {
    id,
    config: { structured, unstructured: 0, quant: 'none', threads: 1 },
    modelPath: path,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sizeBytes: bytes.length,
    // the same latency for both: scaled back up, a served p50 predicts itself (step up once under 0.9 x budget)
    latencyP50Ms: 1,
    latencyP95Ms: 1.2,
    modelRssMb: 10,
    fidelity: structured ? 0.99 : 1,
    meets: { latency: true, ram: true, fidelity: true },
  };
}

/** Send requests one after another until stopped, as an application would (`batch`: 16 images per request). */
function client(target: { url?: string | null; socket?: string | null }): {
  stop: () => Promise<void>;
  count: () => number;
  batch: boolean;
} {
  let go = true;
  let n = 0;
  const c = {
    batch: false,
    stop: async () => {
      go = false;
      await loop;
    },
    count: () => n,
  };
  const loop = (async () => {
    while (go) {
      await infer(target, 'default', { x: c.batch ? x16 : x });
      n++;
    }
  })();
  return c;
}
const variant = join(dir, 'cls-b.onnx');
const m = parseModel(readFileSync(CLS_MODEL));
m.metadata.set('edgefit-test', 'variant-b');
writeFileSync(variant, serializeModel(m));
const big = entry('big', CLS_MODEL, 0);
const small = entry('small', variant, 0.5);
const fitter: Fitter = async () => ({ chosenId: 'big', frontier: [big, small], referenceLatencyP50Ms: 1, fitter: 'test-two-level' });

/** The served run p50 of cls on this box now, as the serve process measures it (the budget is set from it). */
async function baselineRunP50(): Promise<number> {
  const sp = new ServeProcess();
  const where = await sp.start({ host: '127.0.0.1', port: 0, socket: null, token: null, maxBodyMb: 8, statsEveryS: 1 });
  try {
    await sp.load({ file: CLS_MODEL, version: 'base', sha256: big.sha256, level: 0, label: 'fp32', threads: 1, shapes: SHAPES });
    const windows: ServeStats[] = [];
    sp.on('stats', (s) => windows.push(s));
    const c = client({ url: where.url });
    while (windows.length < 3) await new Promise((r) => setTimeout(r, 100));
    await c.stop();
    const p50s = windows.map((w) => w.perVersion[0]!.runP50Ms).sort((a, b) => a - b);
    return p50s[1]!;
  } finally {
    await sp.stop();
  }
}

interface Ev {
  type: string;
  data: Record<string, unknown>;
}

t.test('the agent serves what it deploys; slow served requests step it down, and back up when they are fast again', async (t) => {
  const base = await baselineRunP50();
  // three times the quiet figure: met by single images (with the 0.9 headroom to step back up),
  // broken by batches of 16
  const budgetMs = Math.round(base * 3 * 1000) / 1000;
  t.comment(`quiet served run p50 ${base} ms; budget ${budgetMs} ms`);
  const state = join(dir, 'box');
  const agent = new Agent(
    loadAgentConfig({
      flags: {
        deviceId: 'serve-box',
        stateDir: state,
        train: { minutes: 0 },
        model: { path: CLS_MODEL, shapes: SHAPES },
        budgets: { latencyMs: budgetMs },
        threads: 1,
        metricsIntervalS: 1,
        // 2 s stats windows; probes (children) only when the box's applications are idle
        probe: { intervalS: 2, runs: 5, stepDownAfter: 2, stepUpAfter: 3, headroom: 0.9, maxCpuPercent: 100 },
        mqtt: { url: broker.url },
        security: { operatorKeys: [op.pubFile] },
        serve: { port: 0 },
      },
    }),
    { fitter, log: (l) => logs.push(l) },
  );
  const logs: string[] = [];
  const lat: string[] = [];
  agent.bus.on('latency', (l) => lat.push(l ? `${l.source}:${l.p50}` : 'null'));
  t.teardown(() => {
    if (t.passing()) return;
    t.comment(`latencies: ${lat.join(' ')}`);
    t.comment(logs.join('\n'));
  });
  const all: Ev[] = [];
  const waiting: Array<() => void> = [];
  agent.bus.on('event', (type, _m, data) => {
    all.push({ type, data });
    for (const w of waiting.splice(0)) w();
  });
  const next = async (type: string, timeoutMs: number, where: (e: Ev) => boolean = () => true, from = all.length): Promise<Ev> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = all.slice(from).find((e) => e.type === type && where(e));
      if (hit) return hit;
      if (Date.now() > until) throw new Error(`no '${type}' event within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const tm = setTimeout(r, 200);
        waiting.push(() => (clearTimeout(tm), r()));
      });
    }
  };
  t.teardown(() => agent.stop());
  await agent.start();
  const started = await next('serve-started', 30_000, () => true, 0);
  const url = started.data.url as string;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'a free port on loopback');
  t.equal(started.data.socket, join(state, 'serve.sock'));
  const deployed = await next('deployed', 60_000, (e) => e.data.candidateId === 'big', 0);

  // an application's request: outputs, and which version and level answered
  const r = await infer({ url }, 'default', { x });
  t.equal(r.json.model_version, deployed.data.version, 'the deployed version answers');
  t.match(r.json.parameters, { level: 0, label: 'fp32' });
  t.ok(Object.keys(r.outputs).length > 0 && Object.values(r.outputs)[0]!.data.length > 0, 'with outputs');
  const overSocket = await infer({ socket: join(state, 'serve.sock') }, 'default', { x });
  t.equal(overSocket.json.model_version, deployed.data.version, 'the socket serves the same');
  const current = join(state, 'models', 'current.onnx');
  t.same(readFileSync(current), readFileSync(CLS_MODEL), 'current.onnx holds the deployed bytes');

  // a deploy by command: the served version and current.onnx change together
  const watch = await Watcher.connect(broker.url, ['edgefit/serve-box/events']);
  t.teardown(() => watch.close());
  const from = all.length;
  await watch.publish('edgefit/serve-box/request/deploy', op.signed('serve-box', 'deploy', 'd1', { candidateId: 'small' }));
  const changed = await next('model-changed', 60_000, (e) => e.data.candidateId === 'small', from);
  const r2 = await infer({ url }, 'default', { x });
  t.equal(r2.json.model_version, changed.data.version, 'the new version answers');
  t.match(r2.json.parameters, { level: 1, label: 'fp32 pruned 50% ch' });
  t.same(readFileSync(current), readFileSync(variant), 'current.onnx holds the new bytes');
  t.not(r2.json.model_version, r.json.model_version);
  const from2 = all.length;
  await watch.publish('edgefit/serve-box/request/deploy', op.signed('serve-box', 'deploy', 'd2', { candidateId: 'big' }));
  await next('model-changed', 60_000, (e) => e.data.candidateId === 'big', from2);

  // an application keeps the model busy with single images; then it sends batches of 16: its
  // requests get slow, and the agent steps down on their figures (probes would never see this)
  closeClients(); // a fresh connection: an idle keep-alive one may be closed by the server as it is reused
  const c = client({ url });
  t.teardown(() => c.stop());
  const from3 = all.length;
  await new Promise((r) => setTimeout(r, 3000));
  t.notOk(
    all.slice(from3).some((e) => e.type === 'stepped-down'),
    'quiet single-image traffic meets the budget',
  );
  c.batch = true;
  const down = await next('stepped-down', 60_000, () => true, from3);
  t.match(down.data, { from: 'big', to: 'small', source: 'served' }, `stepped down on served p50 ${String(down.data.liveP50Ms)} ms`);
  t.ok((down.data.liveP50Ms as number) > budgetMs);

  // single images again: the small level's served p50 is back under 0.9 x budget, and the agent steps up
  c.batch = false;
  const up = await next('stepped-up', 60_000, () => true, from3);
  t.match(up.data, { from: 'small', to: 'big', source: 'served' }, `stepped up on served p50 ${String(up.data.liveP50Ms)} ms`);
  t.ok(c.count() > 20, `${c.count()} requests served meanwhile`);
  await c.stop();

  // the serve process dies: the agent starts another with the current model; the socket path stays
  // (the TCP port was 'any free one', so it may change). SIGBUS, as a mapped shared-memory region
  // raises when its owner truncates the file while a request reads it (shm-mapped.ts): the one
  // crash an application on the box can still cause; the restart does not depend on the signal
  // (kill -9 took the same path)
  const child = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.includes('serve/process.js'));
  t.ok(child, 'the serve process is a child of the agent');
  const from4 = all.length;
  process.kill(Number(child!.trim().split(/\s+/)[0]), 'SIGBUS');
  const again = await next('serve-restarted', 60_000, () => true, from4);
  const deployedNow = all.filter((e) => e.type === 'deployed').at(-1)!.data.version;
  t.equal(again.data.version, deployedNow, 'serving the current version (the step up) again');
  const r3 = await infer({ socket: join(state, 'serve.sock') }, 'default', { x });
  t.equal(r3.json.model_version, again.data.version);
  t.match(r3.json.parameters, { level: 0 });
});
