// The latency probe child (forked by LatencyProbe): load one model in onnxruntime, warm it up,
// time `runs` runs on a real image, reply once and exit. It exits as well when the agent goes
// away (IPC disconnect), so a kill -9 of the agent leaves no probe behind.
import { performance } from 'node:perf_hooks';
import { imageTensor, inputDims } from './inputs.js';
import { floatTensor, openSession, type Feeds } from '../runtime/session.js';
import { checkProbeRequest, type ProbeReply } from './latency.js';
import { procMemMb } from '../evaluate/protocol.js';

async function probe(raw: unknown): Promise<ProbeReply> {
  const r = checkProbeRequest(raw);
  if (typeof r === 'string') return { t: 'error', message: r };
  const before = process.memoryUsage().rss;
  const t0 = performance.now();
  const session = await openSession(r.path, { threads: r.threads, level: 'all' });
  const loadMs = performance.now() - t0;
  const dims = inputDims(session.inputNames, session.inputMetadata, r.shapes);
  const feeds: Feeds = {};
  for (const [name, d] of Object.entries(dims)) feeds[name] = floatTensor(imageTensor(d), d);
  await session.run(feeds); // warm-up allocates the arena: count it in the model's RAM cost
  const modelRssMb = (process.memoryUsage().rss - before) / 1048576;
  const times: number[] = [];
  for (let i = 0; i < r.runs; i++) {
    const s = performance.now();
    await session.run(feeds);
    times.push(performance.now() - s);
  }
  const hwm = procMemMb('self')?.hwmMb ?? NaN;
  const cpu = process.cpuUsage();
  return { t: 'probed', times, loadMs, modelRssMb, hwmMb: Number.isFinite(hwm) ? hwm : 0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

process.on('disconnect', () => process.exit(0));
process.once('message', (raw: unknown) => {
  probe(raw)
    .catch((e: unknown): ProbeReply => ({ t: 'error', message: e instanceof Error ? e.message : String(e) }))
    .then((reply) => process.send!(reply, undefined, undefined, () => process.exit(0)));
});
