// The worker thread that owns one served version's onnxruntime session (issue 19). onnxruntime-node
// creates sessions and runs them synchronously on the calling thread, so each version lives in a
// worker of its own: loading the next one never stalls requests on the current one, and the main
// thread only parses, routes and writes. Tensors arrive and leave as transferred ArrayBuffers, and
// the request's body buffer goes back with the answer (onnxruntime is done with it once run
// returns) so the next request is read into memory already mapped rather than a fresh allocation.
// Run time is measured here, around session.run alone: what a probe measures and adaptation judges.
import { parentPort, workerData } from 'node:worker_threads';
import type * as ort from 'onnxruntime-node';
import { isNdDType, ND_DTYPES, ndZeros, type NdArray } from '../data/ndarray.js';
import { firstLine, openSession, toTensor } from '../runtime/session.js';
import { KSERVE_DTYPES, kserveDType, ProtocolError, type ModelMeta, type TensorMeta } from './protocol.js';
import { MappedRegions } from './shm-mapped.js';
import { shmMap } from './shm-map.js';
import type { MappedSpan } from './shm.js';

export interface WorkerInit {
  file: string;
  threads: number;
  /** Shapes to warm the session up with (a first run allocates; no request should pay for it). */
  shapes: Record<string, number[]>;
}

/** Inputs and outputs in mapped shared memory (shm.ts): the worker maps the regions, not the main thread. */
export interface MappedIO {
  inputs: Record<string, { dtype: NdArray['dtype']; shape: number[]; span: MappedSpan }>;
  outputs: Record<string, MappedSpan>;
}

export type ToWorker =
  | { t: 'run'; id: number; inputs: Record<string, NdArray>; mapped?: MappedIO }
  /** A region is gone (unregistered, no request holds it): unmap it after the requests queued before. */
  | { t: 'unmap'; serial: number };

export type FromWorker =
  | { t: 'ready'; meta: ModelMeta; loadMs: number; warmMs: number }
  | { t: 'failed'; message: string }
  | {
      t: 'done';
      id: number;
      runMs: number;
      outputs: Record<string, NdArray>;
      spent: ArrayBuffer[];
      /** Outputs written into mapped shared memory (their data here is empty): bytes written. */
      written: Record<string, number>;
    }
  /** status 400: the request's fault (a region truncated or too small), else the model's (500). */
  | { t: 'run-failed'; id: number; message: string; status?: 400 };

function meta(list: readonly ort.InferenceSession.ValueMetadata[], what: string): TensorMeta[] {
  return list.map((m) => {
    if (!m.isTensor) throw new Error(`${what} '${m.name}' is not a tensor; only tensors are served`);
    const datatype = kserveDType(m.type);
    if (!datatype) throw new Error(`${what} '${m.name}' has type ${m.type}, which is not served`);
    return { name: m.name, datatype, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
  });
}

/** Zero inputs at the warm-up shapes, or null when some free dimension has no given size. */
function warmInputs(inputs: readonly TensorMeta[], shapes: Record<string, number[]>): Record<string, NdArray> | null {
  const out: Record<string, NdArray> = {};
  for (const m of inputs) {
    // a free batch dimension alone warms up at 1 (what an application sends most)
    const shape = shapes[m.name] ?? m.shape.map((d, i) => (i === 0 && d < 0 ? 1 : d));
    if (shape.some((d) => d < 0) || shape.length !== m.shape.length) return null;
    out[m.name] = ndZeros(KSERVE_DTYPES[m.datatype], shape);
  }
  return out;
}

function fromOrt(t: ort.Tensor, name: string): NdArray {
  if (!isNdDType(t.type)) throw new Error(`output '${name}' has type ${t.type}, which is not served`);
  return { dtype: t.type, shape: t.dims.map(Number), data: t.data as NdArray['data'] };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('session-worker must run in a worker thread');
  const init = workerData as WorkerInit;
  let session: ort.InferenceSession;
  let m: ModelMeta;
  const t0 = performance.now();
  try {
    // idle intra-op threads sleep: between runs this process's main thread parses and writes and
    // the application on the same cores prepares its next request, and during a swap two
    // sessions share the box; pools spinning after each run would take those cores (det served
    // on a loaded 2-core box, side by side: p50 209 ms with pools sleeping, 494 ms spinning)
    session = await openSession(init.file, { threads: init.threads, spinning: false });
    m = { inputs: meta(session.inputMetadata, 'input'), outputs: meta(session.outputMetadata, 'output') };
  } catch (e) {
    port.postMessage({ t: 'failed', message: firstLine(e) } satisfies FromWorker);
    return;
  }
  const loadMs = performance.now() - t0;
  const warm = warmInputs(m.inputs, init.shapes);
  const w0 = performance.now();
  if (warm) {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, a] of Object.entries(warm)) feeds[k] = toTensor(a);
    try {
      await session.run(feeds);
    } catch (e) {
      port.postMessage({ t: 'failed', message: `warm-up run failed: ${firstLine(e)}` } satisfies FromWorker);
      return;
    }
  }
  port.postMessage({ t: 'ready', meta: m, loadMs, warmMs: performance.now() - w0 } satisfies FromWorker);

  // One request at a time, in arrival order (the engine sends one at a time anyway); an unmap
  // waits behind the requests sent before it, which may still use the region.
  let queue = Promise.resolve();
  let regions: MappedRegions | null = null;
  port.on('message', (msg: ToWorker) => {
    queue = queue.then(async () => {
      if (msg.t === 'unmap') return regions?.drop(msg.serial);
      try {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [k, a] of Object.entries(msg.inputs)) feeds[k] = toTensor(a);
        if (msg.mapped && !regions) {
          const addon = shmMap();
          if (!addon) throw new Error('the shm-map addon does not load in the session worker');
          regions = new MappedRegions(addon);
        }
        for (const [k, i] of Object.entries(msg.mapped?.inputs ?? {})) feeds[k] = toTensor(regions!.input(i.span, i.dtype, i.shape));
        const r0 = performance.now();
        const res = await session.run(feeds);
        const runMs = performance.now() - r0;
        const outputs: Record<string, NdArray> = {};
        const written: Record<string, number> = {};
        for (const [k, t] of Object.entries(res)) {
          const a = fromOrt(t, k);
          const span = msg.mapped?.outputs[k];
          if (span) {
            // copied into the client's region: only the shape goes back
            written[k] = regions!.output(k, span, a.data);
            outputs[k] = { ...a, data: new ND_DTYPES[a.dtype].ctor(0) as NdArray['data'] };
          } else outputs[k] = a;
        }
        const out = new Set(Object.values(outputs).map((a) => a.data.buffer as ArrayBuffer));
        // the inputs' buffers (the request body) go back for reuse; never one an output lives in
        const spent = [...new Set(Object.values(msg.inputs).map((a) => a.data.buffer as ArrayBuffer))].filter((b) => !out.has(b));
        try {
          port.postMessage({ t: 'done', id: msg.id, runMs, outputs, spent, written } satisfies FromWorker, [...out, ...spent]);
        } catch {
          // a buffer onnxruntime will not let go of (external memory): send a copy instead, and no
          // body buffers (they would be copied too, for nothing)
          port.postMessage({ t: 'done', id: msg.id, runMs, outputs, spent: [], written } satisfies FromWorker);
        }
      } catch (e) {
        const status = e instanceof ProtocolError && e.status === 400 ? { status: 400 as const } : {};
        port.postMessage({ t: 'run-failed', id: msg.id, message: firstLine(e), ...status } satisfies FromWorker);
      }
    });
  });
}

await main();
