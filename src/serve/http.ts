// The serve listeners (issue 19): KServe v2 / Triton HTTP routes over TCP (loopback unless a token
// is set) and a Unix socket, both answered by one handler. Health routes are open; with a token,
// every other route needs `Authorization: Bearer <token>`. Bad input gets a 4xx with a one-line
// JSON reason and the server keeps serving; a body over the limit is refused from its
// Content-Length, or while it streams, before it is buffered whole. GET /v2/edgefit/events is a
// server-sent-event stream of `model` events, one per swap, for applications that load the model
// file themselves. /v2/systemsharedmemory/... is Triton's shared-memory extension (shm.ts), for
// clients on this box only.
import { createHash, timingSafeEqual } from 'node:crypto';
import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP } from 'node:net';
import { EdgefitError } from '../errors.js';
import { Engine, EngineError, type RunResult } from './engine.js';
import {
  encodeInferResponse,
  parseInferRequest,
  ProtocolError,
  writeShmOutputs,
  type InferRequest,
  type ModelMeta,
  type ShmAccess,
} from './protocol.js';
import { SharedMemory } from './shm.js';
import { StatsWindow } from './stats.js';
import { CaptureRing } from './capture.js';
import { BodyPool } from './body-pool.js';
import type { ServedModel, ServeOptions } from './types.js';

/** The model name requests use when none is configured. */
export const DEFAULT_MODEL_NAME = 'default';

/** Is `host` a loopback address (the only kind served without a token)? */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** What the SSE route and the `model` event carry: enough to load the same file. */
export function modelEvent(m: ServedModel): { version: string; level: number | null; label: string; sha256: string; file: string } {
  return { version: m.version, level: m.level, label: m.label, sha256: m.sha256, file: m.file };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const SSE_PING_MS = 15_000;

export class ServeServer {
  readonly name: string;
  private readonly servers: Server[] = [];
  private readonly events = new Set<ServerResponse>();
  private readonly tokenHash: Buffer | null;
  private inFlight = 0;
  private ping: NodeJS.Timeout | undefined;
  /** Request bodies the worker is done with, read into again (body-pool.ts). */
  readonly bodies = new BodyPool();
  /** Opt-in input capture (off unless opts.capture). */
  readonly capture: CaptureRing | null;
  /** Registered shared-memory regions (Triton's system shared-memory extension). */
  readonly shm = new SharedMemory();
  /**
   * An input in shared memory is held to the body limit; read (pread path), its buffer is
   * allocated here. Mapped, it is left where it is, unless inputs are captured (the capture ring
   * keeps the bytes the main thread has: it then reads them).
   */
  private readonly shmAccess: ShmAccess = {
    io: this.shm,
    limit: (n) => {
      if (n > this.opts.maxBodyMb * 2 ** 20)
        throw new ProtocolError(413, `an input of ${n} bytes is over the ${this.opts.maxBodyMb} MiB limit`);
    },
    alloc: (n) => {
      this.shmAccess.limit(n);
      return Buffer.from(this.bodies.take(n), 0, n);
    },
    mapped: false,
  };

  constructor(
    readonly engine: Engine,
    private readonly opts: ServeOptions,
    readonly stats: StatsWindow = new StatsWindow(),
  ) {
    this.name = opts.name ?? DEFAULT_MODEL_NAME;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(this.name))
      throw new EdgefitError('USAGE', `model name '${this.name}' must be letters, digits, '.', '_' or '-'`);
    if (opts.port !== null && !isLoopback(opts.host) && !opts.token) {
      throw new EdgefitError('USAGE', `serving on ${opts.host} (not loopback) needs a token`);
    }
    if (opts.token !== null && opts.token.length === 0) throw new EdgefitError('USAGE', 'the serve token is empty');
    if (!(opts.maxBodyMb > 0)) throw new EdgefitError('USAGE', `the body limit must be positive MiB, not ${opts.maxBodyMb}`);
    // compared as digests: equal lengths for timingSafeEqual whatever the header holds
    this.tokenHash = opts.token ? createHash('sha256').update(opts.token).digest() : null;
    this.capture = opts.capture ? new CaptureRing(opts.capture, (l) => process.stderr.write(`edgefit serve: ${l}\n`)) : null;
    engine.on('swap', (m) => this.broadcast(m));
    this.shmAccess.mapped = this.shm.mmap && !this.capture;
    this.shm.onDrop = (serial) => engine.unmap(serial);
  }

  /** Requests being answered (received, not yet written). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Start the listeners; the TCP URL (with the port chosen) and the socket path. */
  async listen(): Promise<{ url: string | null; socket: string | null }> {
    let url: string | null = null;
    if (this.opts.port !== null) {
      const s = this.newServer();
      await listenOn(s, { host: this.opts.host, port: this.opts.port });
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
      url = `http://${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${port}`;
    }
    if (this.opts.socket !== null) {
      await clearStaleSocket(this.opts.socket);
      await listenOn(this.newServer(), { path: this.opts.socket });
    }
    this.ping = setInterval(() => {
      for (const r of this.events) r.write(': ping\n\n');
    }, SSE_PING_MS);
    this.ping.unref();
    return { url, socket: this.opts.socket };
  }

  async close(): Promise<void> {
    clearInterval(this.ping);
    this.bodies.clear();
    this.shm.clear();
    for (const r of this.events) r.end();
    this.events.clear();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeIdleConnections();
            // a keep-alive connection busy at close time would hold the close open: cut it after a grace
            setTimeout(() => s.closeAllConnections(), 2000).unref();
          }),
      ),
    );
    if (this.opts.socket !== null) {
      try {
        unlinkSync(this.opts.socket);
      } catch {
        // already gone
      }
    }
  }

  private newServer(): Server {
    const s = createServer((req, res) => void this.handle(req, res));
    this.servers.push(s);
    return s;
  }

  private broadcast(m: ServedModel): void {
    const line = `event: model\ndata: ${JSON.stringify(modelEvent(m))}\n\n`;
    for (const r of this.events) r.write(line);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path === '/v2/health/live') return this.json(res, 200, { live: true });
      if (path === '/v2/health/ready') return this.json(res, this.engine.ready ? 200 : 503, { ready: this.engine.ready });
      this.authorize(req);
      if (path === '/v2') {
        this.method(req, 'GET');
        return this.json(res, 200, {
          name: 'edgefit',
          version: '1',
          extensions: ['binary_tensor_data', 'system_shared_memory', 'edgefit_events'],
        });
      }
      if (path.startsWith('/v2/systemsharedmemory/')) return await this.shmRoute(req, res, path);
      if (path === '/v2/edgefit/events') {
        this.method(req, 'GET');
        return this.subscribe(res);
      }
      const m = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/.exec(path);
      if (!m) throw new HttpError(404, `no route ${req.method ?? ''} ${path}`);
      const [, name, version, action] = m;
      if (decodeURIComponent(name!) !== this.name)
        throw new HttpError(404, `no model '${decodeURIComponent(name!)}'; this server serves '${this.name}'`);
      const cur = this.engine.model;
      const meta = this.engine.meta;
      if (action === '/ready') {
        this.method(req, 'GET');
        const ready = cur !== null && (version === undefined || decodeURIComponent(version) === cur.version);
        return this.json(res, ready ? 200 : 503, { name: this.name, ready });
      }
      if (!cur || !meta) throw new HttpError(503, 'no model is loaded yet');
      if (version !== undefined && decodeURIComponent(version) !== cur.version) {
        throw new HttpError(404, `version '${decodeURIComponent(version)}' is not served; the current version is '${cur.version}'`);
      }
      if (action === undefined) {
        this.method(req, 'GET');
        return this.json(res, 200, this.metadata(cur, meta));
      }
      this.method(req, 'POST');
      return await this.infer(req, res, meta, t0);
    } catch (e) {
      this.fail(req, res, e);
    }
  }

  private metadata(cur: ServedModel, meta: ModelMeta): unknown {
    return {
      name: this.name,
      versions: [cur.version],
      platform: 'onnxruntime_onnx',
      inputs: meta.inputs,
      outputs: meta.outputs,
      parameters: { level: cur.level, label: cur.label, sha256: cur.sha256, shapes: cur.shapes },
    };
  }

  private async infer(req: IncomingMessage, res: ServerResponse, meta: ModelMeta, t0: number): Promise<void> {
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    const hl = req.headers['inference-header-content-length'];
    let headerLength: number | null = null;
    if (hl !== undefined) {
      headerLength = /^\d+$/.test(String(hl)) ? Number(hl) : NaN;
      if (Number.isNaN(headerLength)) {
        drain(req, res);
        throw new ProtocolError(400, `Inference-Header-Content-Length '${String(hl)}' is not a byte count`);
      }
    }
    const body = await this.readBody(req, res, headerLength ?? 0);
    const parsed = parseInferRequest(body, headerLength, meta, isLocal(req) ? this.shmAccess : undefined);
    // JSON inputs (and binary ones copied to align them) do not use the body: reuse it now
    if (!Object.values(parsed.inputs).some((a) => a.data.buffer === body.buffer)) this.bodies.give(body.buffer as ArrayBuffer);
    this.capture?.offer(parsed.inputs); // before infer: the inputs' buffer moves to the worker
    const t1 = performance.now();
    const r = await this.inferMapped(parsed);
    const t2 = performance.now();
    for (const b of r.spent) this.bodies.give(b);
    writeShmOutputs(parsed, r.outputs, this.shm, r.written);
    // where the time went, for the application and bench-serve: reading and checking the body,
    // onnxruntime's run, and the rest between (to the worker, waiting behind other requests, back)
    const ms = (x: number): number => Math.round(x * 1000) / 1000;
    const enc = encodeInferResponse(
      parsed,
      r.outputs,
      { model: this.name, version: r.model.version, level: r.model.level, label: r.model.label },
      { run_ms: ms(r.runMs), receive_ms: ms(t1 - t0), queue_ms: ms(Math.max(0, t2 - t1 - r.runMs)) },
      r.written,
    );
    res.once('finish', () => this.stats.served(r.model.version, r.model.level, r.runMs, performance.now() - t0));
    res.writeHead(200, enc.headers);
    for (const c of enc.chunks.slice(0, -1)) res.write(c);
    res.end(enc.chunks[enc.chunks.length - 1]);
  }

  /**
   * Run a parsed request; shared-memory inputs left in place, and (with mmap) every shared-memory
   * output, go to the worker as spans of their regions, which stay held (open, mapped) until the
   * worker has answered.
   */
  private async inferMapped(parsed: InferRequest): Promise<RunResult> {
    const ins = Object.entries(parsed.shmInputs);
    const outs = this.shm.mmap ? (parsed.outputs ?? []).filter((o) => o.shm) : [];
    if (ins.length === 0 && outs.length === 0) return this.engine.infer(parsed.inputs);
    const held = this.shm.hold([...ins.map(([, i]) => i.span), ...outs.map((o) => o.shm!)]);
    try {
      return await this.engine.infer(parsed.inputs, {
        inputs: Object.fromEntries(ins.map(([n, i], k) => [n, { dtype: i.dtype, shape: i.shape, span: held.spans[k]! }])),
        outputs: Object.fromEntries(outs.map((o, k) => [o.name, held.spans[ins.length + k]!])),
      });
    } finally {
      held.release();
    }
  }

  /**
   * The whole body in one ArrayBuffer of its own (binary inputs are views of it, then transferred
   * to the worker), read straight into a buffer of its Content-Length (taken from the body pool,
   * no chunk list to concatenate). It is placed so that the byte after the JSON header
   * (`jsonLength`) is 8-byte aligned: the first binary tensor is then used where it landed, never
   * copied to align it.
   * Over the limit: 413, from Content-Length before reading, or as soon as the streamed bytes
   * pass it.
   */
  private readBody(req: IncomingMessage, res: ServerResponse, jsonLength: number): Promise<Buffer> {
    const limit = Math.floor(this.opts.maxBodyMb * 2 ** 20);
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : null;
    const tooBig = (n: number): HttpError =>
      new HttpError(413, `the body (${n > limit ? `${n} bytes` : 'streamed'}) is over the ${this.opts.maxBodyMb} MiB limit`);
    if (declared !== null && declared > limit) {
      drain(req, res);
      return Promise.reject(tooBig(declared));
    }
    const pad = (8 - (jsonLength % 8)) % 8;
    return new Promise((resolve, reject) => {
      const ab = this.bodies.take(pad + (declared ?? Math.min(limit, 1 << 16)));
      // a streamed body (no Content-Length) may fill all of a reused buffer before it grows
      let buf = Buffer.from(ab, pad, declared ?? Math.min(limit, ab.byteLength - pad));
      let n = 0;
      let done = false;
      req.on('data', (chunk: Buffer) => {
        if (done) return;
        if (n + chunk.length > limit) {
          done = true;
          drain(req, res);
          return reject(tooBig(n + chunk.length));
        }
        if (n + chunk.length > buf.length) {
          if (declared !== null) {
            done = true;
            drain(req, res);
            return reject(new HttpError(400, `the body is longer than its Content-Length ${declared}`));
          }
          const bigger = Buffer.from(new ArrayBuffer(pad + Math.min(limit, Math.max(buf.length * 2, n + chunk.length))), pad);
          buf.copy(bigger, 0, 0, n);
          buf = bigger;
        }
        chunk.copy(buf, n);
        n += chunk.length;
      });
      req.on('end', () => {
        if (done) return;
        done = true;
        resolve(buf.subarray(0, n));
      });
      req.on('error', (e) => {
        if (done) return;
        done = true;
        reject(new HttpError(400, `reading the body failed: ${e.message}`));
      });
    });
  }

  /** Register, unregister and list shared-memory regions: only for a client on this box. */
  private async shmRoute(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!isLocal(req)) throw new HttpError(403, 'shared memory is only for applications on this box (loopback or the Unix socket)');
    const m = /^\/v2\/systemsharedmemory(?:\/region\/([^/]+))?\/(status|register|unregister)$/.exec(path);
    if (!m) throw new HttpError(404, `no route ${req.method ?? ''} ${path}`);
    let name: string | undefined;
    try {
      name = m[1] !== undefined ? decodeURIComponent(m[1]) : undefined;
    } catch {
      throw new HttpError(400, `region name '${m[1]}' is not valid percent-encoding`);
    }
    if (m[2] === 'status') {
      this.method(req, 'GET');
      return this.json(res, 200, this.shm.status(name));
    }
    this.method(req, 'POST');
    if (m[2] === 'unregister') {
      this.shm.unregister(name);
      return this.json(res, 200, {});
    }
    if (name === undefined) throw new HttpError(404, 'register a region at /v2/systemsharedmemory/region/<name>/register');
    const body = await this.readBody(req, res, 0);
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new ProtocolError(400, `malformed JSON: ${(e as Error).message.split('\n')[0]}`);
    }
    this.shm.register(name, doc);
    return this.json(res, 200, {});
  }

  private subscribe(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const cur = this.engine.model;
    // the current model first: a client learns what is served without waiting for a swap
    res.write(cur ? `event: model\ndata: ${JSON.stringify(modelEvent(cur))}\n\n` : ': no model yet\n\n');
    this.events.add(res);
    res.once('close', () => this.events.delete(res));
  }

  private authorize(req: IncomingMessage): void {
    if (!this.tokenHash) return;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    const ok = m !== null && timingSafeEqual(createHash('sha256').update(m[1]!).digest(), this.tokenHash);
    if (!ok) throw new HttpError(401, h ? 'the bearer token is wrong' : 'this server needs Authorization: Bearer <token>');
  }

  private method(req: IncomingMessage, want: 'GET' | 'POST'): void {
    if (req.method !== want) throw new HttpError(405, `${req.method ?? '?'} is not allowed here; use ${want}`);
  }

  private fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    const status = e instanceof HttpError || e instanceof ProtocolError || e instanceof EngineError ? e.status : 500;
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? 'error';
    if (status >= 500 && status !== 503) this.stats.error();
    else this.stats.reject();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    if (status === 413 || !req.complete) headers.connection = 'close';
    this.json(res, status, { error: msg }, headers);
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const s = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(s)), ...headers });
    res.end(s);
  }
}

/** Did the request come from this box: the Unix socket (no remote address) or a loopback address? */
export function isLocal(req: Pick<IncomingMessage, 'socket'>): boolean {
  const a = req.socket.remoteAddress;
  return a === undefined || isLoopback(a.replace(/^::ffff:/, ''));
}

/**
 * Read and discard the rest of a refused body (not buffered), so the client gets to read the
 * answer instead of a reset; the connection closes after at most a few seconds of it.
 */
function drain(req: IncomingMessage, res: ServerResponse): void {
  req.removeAllListeners('data');
  req.resume();
  const t = setTimeout(() => req.socket.destroy(), 5000);
  t.unref();
  res.once('close', () => clearTimeout(t));
}

function listenOn(s: Server, where: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('error', (e) =>
      reject(new EdgefitError('USAGE', `cannot listen on ${'path' in where ? where.path : `${where.host}:${where.port}`}: ${e.message}`)),
    );
    s.listen(where, () => resolve());
  });
}

/** Remove a socket file left by a server that is gone; refuse one a live server answers on. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new EdgefitError('USAGE', `${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new EdgefitError('USAGE', `another server listens on ${path}`);
  unlinkSync(path);
}
