// The evaluation child. It holds one onnxruntime session, times it, and returns outputs, so that
// a crash, hang or runaway allocation inside the runtime kills only this process. It is started
// by Evaluator (fork, 'advanced' serialization) and exits when the parent disconnects.
import { performance } from 'node:perf_hooks';
import type ort from 'onnxruntime-node';
import type { NdArray } from '../data/ndarray.js';
import { fromTensor, openSession, toFeeds } from '../runtime/session.js';
import { procMemMb, validateToChild, type FromChild, type ToChild } from './protocol.js';

let session: ort.InferenceSession | undefined;

function send(m: FromChild): Promise<void> {
  return new Promise((resolve, reject) => process.send!(m, undefined, undefined, (e) => (e ? reject(e) : resolve())));
}

async function handle(m: ToChild): Promise<FromChild> {
  if (m.t === 'load') {
    const o = m.session;
    const opts = {
      threads: o.intraOpThreads,
      level: o.graphOptimizationLevel,
      memArena: o.enableCpuMemArena,
      memPattern: o.enableMemPattern,
    };
    const t0 = performance.now();
    session = await openSession('path' in m.model ? m.model.path : m.model.bytes, opts);
    const loadMs = performance.now() - t0;
    return { t: 'loaded', loadMs, inputNames: [...session.inputNames], outputNames: [...session.outputNames] };
  }
  if (!session) return { t: 'error', code: 'INTERNAL', message: 'no model loaded' };
  if (m.t === 'time') {
    const feeds = m.samples.map(toFeeds);
    for (let i = 0; i < m.warmup; i++) await session.run(feeds[i % feeds.length]!);
    await send({ t: 'warm' });
    const latencies: number[] = [];
    const start = performance.now();
    for (let i = 0; i < m.runs; i++) {
      if (i > 0 && performance.now() - start > m.maxMs) break;
      const t0 = performance.now();
      await session.run(feeds[i % feeds.length]!);
      latencies.push(performance.now() - t0);
    }
    const mem = procMemMb('self') ?? { rssMb: NaN, hwmMb: NaN };
    return { t: 'timed', latencies, hwmMb: mem.hwmMb, rssMb: mem.rssMb };
  }
  const outputs: Record<string, NdArray>[] = [];
  for (const s of m.samples) {
    const res = await session.run(toFeeds(s));
    const o: Record<string, NdArray> = {};
    for (const [k, v] of Object.entries(res)) o[k] = fromTensor(v, k);
    outputs.push(o);
  }
  return { t: 'outputs', outputs };
}

// Serialise requests: the parent sends one at a time, but a queue keeps order if it ever doesn't.
let chain: Promise<void> = Promise.resolve();
process.on('message', (raw: unknown) => {
  chain = chain.then(async () => {
    const m = validateToChild(raw);
    let reply: FromChild;
    if (typeof m === 'string') reply = { t: 'error', code: 'INTERNAL', message: `worker got a ${m}` };
    else {
      try {
        reply = await handle(m);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        reply = {
          t: 'error',
          code: typeof code === 'string' && /^[A-Z_]+$/.test(code) ? code : 'EVAL',
          message: (e as Error).message ?? String(e),
        };
      }
    }
    await send(reply);
  });
});
process.on('disconnect', () => process.exit(0));
