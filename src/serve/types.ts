// The serving contract (issue 19): what the box's applications talk to, and how the agent drives it.
//
// Shape of the thing: a serve process (forked by the agent, or `edgefit serve` itself) owns the
// listeners (HTTP on 127.0.0.1 and a Unix socket, KServe v2 / Triton's HTTP inference protocol
// with its binary-tensor extension) and runs each deployed version's onnxruntime session in a
// worker thread of its own, so that loading a new version never blocks requests in flight on the
// old one (onnxruntime-node's run and session creation are synchronous on the calling thread).
// The agent process keeps no session: it sends `load` over IPC before it swaps its pointer (a
// version that does not load is never current) and reads served-latency stats back.

/** One deployed version, as the serve process needs it. */
export interface ServedModel {
  /** Absolute path of the .onnx file (a version under <state>/models/versions/). */
  file: string;
  version: string;
  sha256: string;
  /** Frontier level (0 = largest) or null for the original / shipped bytes. */
  level: number | null;
  /** Human label of the level ("fp32 pruned 19% latency", "int8", "original"). */
  label: string;
  /** Intra-op threads the fit measured this level at. */
  threads: number;
  /** Fixed input shapes the fit used (requests must match them unless the model's dims are dynamic). */
  shapes: Record<string, number[]>;
}

export interface ServeOptions {
  /** TCP host; 127.0.0.1 by default. Anything else needs a token. */
  host: string;
  /** TCP port; 0 picks a free one (tests), null: no TCP listener. */
  port: number | null;
  /** Unix socket path, or null for none. */
  socket: string | null;
  /** Bearer token required on every route but health when set (always required off loopback). */
  token: string | null;
  /** Largest request body accepted, MiB (413 beyond it, before it is buffered). */
  maxBodyMb: number;
  /** The model name in request paths (/v2/models/<name>/infer); 'default' when absent. */
  name?: string;
  /** Opt-in input capture (agent config serve.capture, off by default): 1 request in `every` has its
   * inputs kept as .npy in `dir`, a ring of at most `maxMb` (capture.ts). Absent or null: none. */
  capture?: { dir: string; every: number; maxMb: number } | null;
}

/** Served latency of one version over a stats window. */
export interface VersionStats {
  version: string;
  level: number | null;
  requests: number;
  /** onnxruntime run time inside the worker: what a probe measures, and what adaptation judges. */
  runP50Ms: number;
  runP95Ms: number;
  /** From request received to response written: what the application experiences. */
  totalP50Ms: number;
  totalP95Ms: number;
}

export interface ServeStats {
  /** Length of the window these figures cover, s. */
  windowS: number;
  requests: number;
  /** Requests answered 5xx (the model failed). */
  errors: number;
  /** Requests answered 4xx (bad input, auth, size). */
  rejected: number;
  inFlight: number;
  perVersion: VersionStats[];
}

/** Agent -> serve process, over the fork IPC channel. */
export type ServeCommand = { t: 'load'; txn: number; model: ServedModel } | { t: 'stop' };

/** Serve process -> agent. */
export type ServeEvent =
  | { t: 'listening'; url: string | null; socket: string | null }
  | { t: 'loaded'; txn: number; version: string; loadMs: number; rssMb: number }
  | { t: 'load-failed'; txn: number; message: string }
  | { t: 'stats'; stats: ServeStats }
  | { t: 'error'; message: string };
