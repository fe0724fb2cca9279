// The latency probe child (forked by LatencyProbe): load one model in onnxruntime, warm it up,
// time `runs` runs, reply once and exit. It exits as well when the agent goes away (IPC
// disconnect), so a kill -9 of the agent leaves no probe behind. It times the way the fit's
// evaluateModel does (issue 16: one model's latency must mean the same number in both places):
// the same warm-up count, the same thread count (the caller's), and the fit's inputs when the
// agent has calibration data (the first 8 samples, cycled), else a real photo.
import { performance } from 'node:perf_hooks';
import { imageTensor, inputDims } from './inputs.js';
import { loadInputSet } from '../data/inputs.js';
import { floatTensor, openSession, toFeeds, type Feeds } from '../runtime/session.js';
import { checkProbeRequest, type ProbeReply } from './latency.js';
import { procMemMb } from '../evaluate/protocol.js';
import { rssBytes } from '../util/rss.js';

async function probe(raw: unknown): Promise<ProbeReply> {
  const r = checkProbeRequest(raw);
  if (typeof r === 'string') return { t: 'error', message: r };
  const before = rssBytes();
  const t0 = performance.now();
  const session = await openSession(r.path, { threads: r.threads, level: 'all' });
  const loadMs = performance.now() - t0;
  const feeds = probeFeeds(session, r.shapes, r.data);
  await session.run(feeds[0]!); // the first warm-up allocates the arena: count it in the model's RAM cost
  const modelRssMb = (rssBytes() - before) / 1048576;
  // a load-only request (runs 0) checks the model and its RAM; timing ones warm up as the fit does
  for (let i = 1; r.runs > 0 && i < (r.warmup ?? 1); i++) await session.run(feeds[i % feeds.length]!);
  const times: number[] = [];
  for (let i = 0; i < r.runs; i++) {
    const f = feeds[i % feeds.length]!;
    const s = performance.now();
    await session.run(f);
    times.push(performance.now() - s);
  }
  const hwm = procMemMb('self')?.hwmMb ?? NaN;
  const cpu = process.cpuUsage();
  return { t: 'probed', times, loadMs, modelRssMb, hwmMb: Number.isFinite(hwm) ? hwm : 0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

type Session = Awaited<ReturnType<typeof openSession>>;

/** The calibration samples the fit timed on (at most 8, as evaluateModel's timingSamples), else the photo. */
function probeFeeds(session: Session, shapes: Record<string, number[]>, data: string | undefined): Feeds[] {
  if (data) {
    try {
      const meta = session.inputMetadata as unknown as Array<{ name: string; type?: string; shape?: Array<number | string> }>;
      const inputs = meta.map((m) => ({ name: m.name, dtype: m.type ?? 'float32', shape: m.shape ?? null }));
      const set = loadInputSet(data, inputs, { shapes: new Map(Object.entries(shapes)), limit: 8 });
      if (set.samples.length) return set.samples.map(toFeeds);
    } catch {
      // data the fit could read but this model cannot (another input layout): the photo still times it
    }
  }
  const dims = inputDims(session.inputNames, session.inputMetadata, shapes);
  const feeds: Feeds = {};
  for (const [name, d] of Object.entries(dims)) feeds[name] = floatTensor(imageTensor(d), d);
  return [feeds];
}

process.on('disconnect', () => process.exit(0));
process.once('message', (raw: unknown) => {
  probe(raw)
    .catch((e: unknown): ProbeReply => ({ t: 'error', message: e instanceof Error ? e.message : String(e) }))
    .then((reply) => process.send!(reply, undefined, undefined, () => process.exit(0)));
});
