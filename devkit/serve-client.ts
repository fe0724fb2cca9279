// A KServe v2 client for tests and benchmarks of `edgefit serve` (issue 19): JSON and binary
// tensor bodies, over TCP or the Unix socket, keep-alive connections. Plain node:http, so what it
// measures is the server, not a client library.
import { closeSync, ftruncateSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import type { NdArray } from '../src/data/ndarray.js';
import { ND_DTYPES } from '../src/data/ndarray.js';
import { KSERVE_DTYPES, kserveDType } from '../src/serve/protocol.js';
import { shmMap } from '../src/serve/shm-map.js';

export interface Target {
  /** http://host:port, or null to use the socket. */
  url?: string | null;
  socket?: string | null;
  token?: string | null;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const agents = new Map<string, Agent>();
function agentFor(t: Target): Agent {
  const key = t.socket ?? t.url ?? '';
  let a = agents.get(key);
  if (!a) agents.set(key, (a = new Agent({ keepAlive: true, maxSockets: 64 })));
  return a;
}

/** Close the keep-alive connections (a test's end). */
export function closeClients(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

/**
 * One HTTP request; the whole answer. A keep-alive connection the server closed as idle (its
 * keepAliveTimeout, 5 s, passes while a benchmark rotates through other sides) can fail as it is
 * reused (EPIPE, ECONNRESET): that request is sent once more on a fresh connection, as Node's
 * docs advise (req.reusedSocket): the server had closed that connection, so it did not serve the request.
 */
export async function request(
  t: Target,
  method: string,
  path: string,
  body?: Buffer | string | Buffer[],
  headers: Record<string, string> = {},
): Promise<Reply> {
  try {
    return await requestOnce(t, method, path, body, headers);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!(e as { reusedSocket?: boolean }).reusedSocket || (code !== 'EPIPE' && code !== 'ECONNRESET')) throw e;
    return requestOnce(t, method, path, body, headers);
  }
}

function requestOnce(
  t: Target,
  method: string,
  path: string,
  body?: Buffer | string | Buffer[],
  headers: Record<string, string> = {},
): Promise<Reply> {
  const parts = body === undefined ? [] : Array.isArray(body) ? body : [typeof body === 'string' ? Buffer.from(body) : body];
  const length = parts.reduce((n, b) => n + b.length, 0);
  const u = t.url ? new URL(t.url) : null;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        method,
        path,
        agent: agentFor(t),
        ...(u ? { host: u.hostname, port: u.port } : { socketPath: t.socket! }),
        headers: {
          ...(t.token ? { authorization: `Bearer ${t.token}` } : {}),
          ...(body !== undefined ? { 'content-length': String(length) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', (e) => reject(Object.assign(e, { reusedSocket: req.reusedSocket })));
    // header and tensors written as they are: no concatenated copy of a large body
    for (const b of parts) req.write(b);
    req.end();
  });
}

/** A binary-tensor request body (Triton's extension): JSON header then each input's raw bytes. */
export function binaryBody(inputs: Record<string, NdArray>, binaryOutput = true): { body: Buffer[]; headers: Record<string, string> } {
  const raw: Buffer[] = [];
  const header = {
    inputs: Object.entries(inputs).map(([name, a]) => {
      const b = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
      raw.push(b);
      return { name, datatype: kserveDType(a.dtype), shape: a.shape, parameters: { binary_data_size: b.length } };
    }),
    parameters: { binary_data_output: binaryOutput },
  };
  const h = Buffer.from(JSON.stringify(header));
  return {
    body: [h, ...raw],
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(h.length) },
  };
}

/** A JSON request body. */
export function jsonBody(inputs: Record<string, NdArray>): { body: Buffer; headers: Record<string, string> } {
  const doc = {
    inputs: Object.entries(inputs).map(([name, a]) => ({
      name,
      datatype: kserveDType(a.dtype),
      shape: a.shape,
      data: Array.from(a.data as Float32Array, Number),
    })),
  };
  return { body: Buffer.from(JSON.stringify(doc)), headers: { 'content-type': 'application/json' } };
}

export interface InferResult {
  /** The response's JSON (header part for binary replies). */
  json: {
    model_name: string;
    model_version: string;
    parameters: { level: number | null; label: string; run_ms: number };
    outputs: { name: string; datatype: string; shape: number[]; data?: number[]; parameters?: { binary_data_size: number } }[];
  };
  outputs: Record<string, NdArray>;
}

/** Decode a 200 infer reply, JSON or binary. */
export function decodeInfer(r: Reply): InferResult {
  const hl = r.headers['inference-header-content-length'];
  const jsonEnd = hl !== undefined ? Number(hl) : r.body.length;
  const json = JSON.parse(r.body.toString('utf8', 0, jsonEnd)) as InferResult['json'];
  const outputs: Record<string, NdArray> = {};
  let off = jsonEnd;
  for (const o of json.outputs) {
    const dtype = KSERVE_DTYPES[o.datatype as keyof typeof KSERVE_DTYPES];
    const Ctor = ND_DTYPES[dtype].ctor;
    if (o.parameters?.binary_data_size !== undefined) {
      const n = o.parameters.binary_data_size;
      const at = r.body.byteOffset + off;
      // a view where aligned, else a copy
      const data =
        at % Ctor.BYTES_PER_ELEMENT === 0
          ? new Ctor(r.body.buffer as ArrayBuffer, at, n / Ctor.BYTES_PER_ELEMENT)
          : new Ctor(Uint8Array.from(r.body.subarray(off, off + n)).buffer, 0, n / Ctor.BYTES_PER_ELEMENT);
      off += n;
      outputs[o.name] = { dtype, shape: o.shape, data: data as NdArray['data'] };
    } else {
      outputs[o.name] = { dtype, shape: o.shape, data: (Ctor as Float32ArrayConstructor).from(o.data ?? []) as NdArray['data'] };
    }
  }
  return { json, outputs };
}

/** POST an infer request for `model` and decode the reply; throws on a non-200 answer. */
export async function infer(t: Target, model: string, inputs: Record<string, NdArray>, binary = true): Promise<InferResult> {
  const { body, headers } = binary ? binaryBody(inputs) : jsonBody(inputs);
  const r = await request(t, 'POST', `/v2/models/${model}/infer`, body, headers);
  if (r.status !== 200) throw new Error(`infer answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
  return decodeInfer(r);
}

/**
 * A client of the shared-memory extension, as an application on the box uses it: one file under
 * /dev/shm holding an input region and an output region, registered once; each infer puts the
 * inputs into it, sends a small JSON request and takes the outputs from it. With the shm-map
 * addon (and `mmap` not false) the file is mapped once: inputs are copied into the mapping (none
 * at all when they already are views of it, `inputView`) and outputs are views of it, overwritten
 * by the next infer; without it, one positioned write per input and one read per output.
 */
export class ShmClient {
  private fd = -1;
  readonly key: string;
  private readonly inBytes: number;
  private readonly outBytes: number;
  private mem: ArrayBuffer | null = null;
  /** How this client moves the bytes: its own mapping of the file, or positioned writes and reads. */
  readonly path: 'mmap' | 'file';

  constructor(
    private readonly t: Target,
    private readonly model: string,
    private readonly inputs: { name: string; dtype: NdArray['dtype']; shape: number[] }[],
    private readonly outputs: { name: string; bytes: number }[],
    tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    mmap = true,
  ) {
    this.key = `/edgefit-client-${tag}`;
    this.inBytes = inputs.reduce((n, i) => n + i.shape.reduce((a, b) => a * b, 1) * ND_DTYPES[i.dtype].ctor.BYTES_PER_ELEMENT, 0);
    this.outBytes = outputs.reduce((n, o) => n + o.bytes, 0);
    this.path = mmap && shmMap() ? 'mmap' : 'file';
  }

  /** Where input `name` lives in the mapping (mmap path, after open): fill it in place and infer copies nothing. */
  inputView(name: string): NdArray['data'] {
    if (!this.mem) throw new Error('inputView needs the mmap path and an open client');
    let at = 0;
    for (const i of this.inputs) {
      const Ctor = ND_DTYPES[i.dtype].ctor;
      const n = i.shape.reduce((a, b) => a * b, 1);
      if (i.name === name) return new Ctor(this.mem, at, n) as NdArray['data'];
      at += n * Ctor.BYTES_PER_ELEMENT;
    }
    throw new Error(`no input '${name}'`);
  }

  get file(): string {
    return `/dev/shm${this.key}`;
  }

  /** Create the file and register `<prefix>-in` and `<prefix>-out`. */
  async open(): Promise<void> {
    const outBytes = this.outBytes;
    this.fd = openSync(this.file, 'w+', 0o600);
    ftruncateSync(this.fd, this.inBytes + outBytes);
    if (this.path === 'mmap') this.mem = shmMap()!.map(this.fd, 0, this.inBytes + outBytes, true);
    for (const [name, offset, size] of [
      ['in', 0, this.inBytes],
      ['out', this.inBytes, outBytes],
    ] as const) {
      const r = await request(
        this.t,
        'POST',
        `/v2/systemsharedmemory/region/${this.region(name)}/register`,
        JSON.stringify({ key: this.key, offset, byte_size: size }),
        { 'content-type': 'application/json' },
      );
      if (r.status !== 200) throw new Error(`register answered ${r.status}: ${r.body.toString()}`);
    }
  }

  region(which: 'in' | 'out'): string {
    return `${this.key.slice(1)}-${which}`;
  }

  /** Output buffers kept between calls when infer(…, true): as an application's loop would, no fresh pages per request. */
  private readonly kept = new Map<string, ArrayBuffer>();
  /** The last infer's own file work (ms): writing the inputs into the region, reading the outputs back. */
  lastIo = { writeMs: 0, readMs: 0 };

  /**
   * One inference: inputs written into the region, outputs read back from it. With `reuse`, each
   * output is read into a buffer kept from the previous call (overwritten by the next one).
   */
  async infer(inputs: Record<string, NdArray>, reuse = false): Promise<{ json: InferResult['json']; outputs: Record<string, NdArray> }> {
    let off = 0;
    const t0 = performance.now();
    const reqInputs = this.inputs.map((i) => {
      const d = inputs[i.name]!.data;
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      if (!this.mem) writeSync(this.fd, bytes, 0, d.byteLength, off);
      else if (d.buffer !== this.mem || d.byteOffset !== off) new Uint8Array(this.mem, off, d.byteLength).set(bytes);
      const p = { shared_memory_region: this.region('in'), shared_memory_byte_size: d.byteLength, shared_memory_offset: off };
      off += d.byteLength;
      return { name: i.name, datatype: kserveDType(i.dtype), shape: i.shape, parameters: p };
    });
    this.lastIo.writeMs = performance.now() - t0;
    let outOff = 0;
    const reqOutputs = this.outputs.map((o) => {
      const p = { shared_memory_region: this.region('out'), shared_memory_byte_size: o.bytes, shared_memory_offset: outOff };
      outOff += o.bytes;
      return { name: o.name, parameters: p };
    });
    const r = await request(this.t, 'POST', `/v2/models/${this.model}/infer`, JSON.stringify({ inputs: reqInputs, outputs: reqOutputs }), {
      'content-type': 'application/json',
    });
    if (r.status !== 200) throw new Error(`infer answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
    const json = JSON.parse(r.body.toString()) as InferResult['json'];
    const outputs: Record<string, NdArray> = {};
    let at = this.inBytes;
    const t1 = performance.now();
    for (const o of json.outputs as (InferResult['json']['outputs'][number] & { parameters: { shared_memory_byte_size: number } })[]) {
      const dtype = KSERVE_DTYPES[o.datatype as keyof typeof KSERVE_DTYPES];
      const n = o.parameters.shared_memory_byte_size;
      const Ctor = ND_DTYPES[dtype].ctor;
      if (this.mem) {
        // in place: a view of the mapping, valid until the next infer
        const data =
          at % Ctor.BYTES_PER_ELEMENT === 0 ? new Ctor(this.mem, at, n / Ctor.BYTES_PER_ELEMENT) : new Ctor(this.mem.slice(at, at + n));
        outputs[o.name] = { dtype, shape: o.shape, data: data as NdArray['data'] };
      } else {
        let buf = reuse ? this.kept.get(o.name) : undefined;
        if (buf?.byteLength !== n) buf = new ArrayBuffer(n);
        if (reuse) this.kept.set(o.name, buf);
        readSync(this.fd, new Uint8Array(buf), 0, n, at);
        outputs[o.name] = { dtype, shape: o.shape, data: new Ctor(buf) as NdArray['data'] };
      }
      at += this.outputs.find((x) => x.name === o.name)!.bytes;
    }
    this.lastIo.readMs = performance.now() - t1;
    return { json, outputs };
  }

  async close(): Promise<void> {
    for (const w of ['in', 'out'] as const)
      await request(this.t, 'POST', `/v2/systemsharedmemory/region/${this.region(w)}/unregister`).catch(() => undefined);
    if (this.mem) shmMap()!.unmap(this.mem);
    this.mem = null;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    rmSync(this.file, { force: true });
  }
}
