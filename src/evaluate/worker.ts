// The evaluation child. It holds one onnxruntime session, times it, and returns outputs, so that
// a crash, hang or runaway allocation inside the runtime kills only this process. It is started
// by Evaluator (fork, 'advanced' serialization) and exits when the parent disconnects.
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { ND_DTYPES, isNdDType, type NdArray, type NdData } from '../data/ndarray.js';
import type { Sample } from '../data/inputs.js';
import { procMemMb, validateToChild, type FromChild, type ToChild } from './protocol.js';

let session: ort.InferenceSession | undefined;

function send(m: FromChild): Promise<void> {
  return new Promise((resolve, reject) => process.send!(m, undefined, undefined, (e) => (e ? reject(e) : resolve())));
}

function toFeeds(s: Sample): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, a] of Object.entries(s)) {
    const type = ND_DTYPES[a.dtype].ort;
    feeds[name] = new ort.Tensor(type as 'float32', a.data as Float32Array, a.shape);
  }
  return feeds;
}

function fromTensor(t: ort.Tensor, name: string): NdArray {
  const dtype = t.type === 'bool' ? 'bool' : t.type;
  if (!isNdDType(dtype)) throw Object.assign(new Error(`output '${name}' has type ${t.type}, which edgefit cannot compare`), { code: 'UNSUPPORTED' });
  const Ctor = ND_DTYPES[dtype].ctor;
  // copy: the tensor's buffer belongs to the runtime and may be reused
  const src = t.data as NdData;
  const data = new Ctor(src.length) as NdData;
  (data as Float32Array).set(src as Float32Array);
  return { dtype, shape: t.dims.map(Number), data };
}

async function handle(m: ToChild): Promise<FromChild> {
  if (m.t === 'load') {
    const o = m.session;
    const opts: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: o.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: o.graphOptimizationLevel,
      enableCpuMemArena: o.enableCpuMemArena,
      enableMemPattern: o.enableMemPattern,
    };
    const t0 = performance.now();
    session = 'path' in m.model ? await ort.InferenceSession.create(m.model.path, opts) : await ort.InferenceSession.create(m.model.bytes, opts);
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
        reply = { t: 'error', code: typeof code === 'string' && /^[A-Z_]+$/.test(code) ? code : 'EVAL', message: (e as Error).message ?? String(e) };
      }
    }
    await send(reply);
  });
});
process.on('disconnect', () => process.exit(0));
