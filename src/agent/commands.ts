// Commands arriving on request/<verb> (as 'command' on the bus): parse, validate, verify the
// signature of a state-changing verb (STATE_CHANGING) and refuse a replayed txn, run the verb's
// handler from COMMANDS, and answer ('response' on the bus, published
// on response/<verb>) echoing the txn. Anything wrong gets an error response and the agent
// carries on; nothing a command carries is ever used as a file path. Under a flood the work is
// bounded: error responses and command-rejected events are rate limited (rejections.ts), and
// handlers run a few at a time with a bounded queue (issue 20).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgefitError, isEdgefitError, oneLine } from '../errors.js';
import type { Budgets } from '../fit/types.js';
import {
  PAYLOAD_VERSION,
  type DeployArgs,
  type FitArgs,
  type PublicFrontierEntry,
  type ResponsePayload,
  type SetBudgetArgs,
} from '../telemetry/payloads.js';
import { maxRequestBytes } from '../telemetry/limits.js';
import { verifyModelSignature, verifyRequest, type SigningConfig } from '../telemetry/signing.js';
import type { Verb } from '../telemetry/topics.js';
import { checkArgs, checkPayload } from '../telemetry/validate.js';
import type { BudgetStore } from './budget-store.js';
import type { AgentBus, Component } from './bus.js';
import type { Deployer } from './deployer.js';
import type { FitManager } from './fit-manager.js';
import { LatencyProbe } from './latency.js';
import { sha256Hex } from './model-store.js';
import { RejectionReporter } from './rejections.js';

/** Everything a handler may use; each handler's signature names the part it needs. */
export interface CommandContext {
  /** The request's transaction id: events a command causes carry it too. */
  txn: string;
  bus: AgentBus;
  uptimeS: () => number;
  fits: Pick<FitManager, 'ensure' | 'key' | 'current' | 'level'>;
  budgets: Pick<BudgetStore, 'set'>;
  deployer: Pick<Deployer, 'current' | 'exclusive' | 'deployEntry' | 'deployBytes' | 'rollback'>;
  shapes: Record<string, number[]>;
  maxModelMb: number;
  signing: SigningConfig;
  /** A shipped model must load and run here before it replaces anything (default: in a probe child). */
  checkRuns?: (bytes: Uint8Array, shapes: Record<string, number[]>) => Promise<void>;
}

type Result = Promise<Record<string, unknown>>;
/** `args: never`: each handler types its own (already schema-checked) arguments. */
type Handler = (args: never, c: CommandContext) => Result;

export const COMMANDS = {
  ping: async (_a: Record<string, never>, c: Pick<CommandContext, 'uptimeS' | 'deployer'>): Result => ({
    pong: true,
    uptimeS: c.uptimeS(),
    deployed: c.deployer.current()?.version ?? null,
  }),

  fit: async (a: FitArgs, c: Pick<CommandContext, 'txn' | 'fits' | 'budgets'>): Result => {
    if (a.budgets) c.budgets.set(a.budgets);
    if (!c.fits.ensure(c.txn, true)) throw new EdgefitError('USAGE', 'a fit is already running');
    return { accepted: true, fitKey: c.fits.key() };
  },

  'set-budget': async (a: SetBudgetArgs, c: Pick<CommandContext, 'txn' | 'fits' | 'budgets' | 'bus'>): Result => {
    const before = c.fits.key();
    const budgets = c.budgets.set(a as Budgets);
    c.bus.emit('budgets:changed', { budgets, txn: c.txn });
    const refit = c.fits.key() !== before && c.fits.ensure(c.txn);
    return { budgets, refit };
  },

  rollback: async (_a: Record<string, never>, c: Pick<CommandContext, 'txn' | 'deployer'>): Result => {
    const v = await c.deployer.rollback(c.txn);
    return { deployed: v.version, sha256: v.sha256 };
  },

  deploy: (a: DeployArgs, c: CommandContext): Result => deploy(a, c),

  'get-frontier': async (_a: Record<string, never>, c: Pick<CommandContext, 'fits' | 'deployer'>): Result => {
    const f = c.fits.current();
    const frontier: PublicFrontierEntry[] = (f?.frontier ?? []).map(({ modelPath: _p, ...rest }) => rest);
    return {
      fitId: f?.fitId ?? null,
      chosenId: f?.fit.chosenId ?? null,
      deployed: c.deployer.current()?.candidateId ?? null,
      level: c.fits.level(),
      frontier,
    };
  },
} as const satisfies Record<Verb, Handler>;

const isCommand = (verb: string): verb is Verb => Object.hasOwn(COMMANDS, verb);

/**
 * Verbs that change the device (what it runs, what it aims for): each must be signed by a pinned
 * operator key (or the legacy shared secret), for this device, once. Read-only verbs stay open so
 * a dashboard without the key can still watch.
 */
export const STATE_CHANGING = {
  ping: false,
  fit: true,
  'set-budget': true,
  rollback: true,
  deploy: true,
  'get-frontier': false,
} as const satisfies Record<Verb, boolean>;

/** The answer to a state-changing verb when nothing could sign it (the default posture). */
export const READ_ONLY_REFUSAL = 'read-only: no operator key is pinned (security.operatorKeys; see README Security)';

/** Signed txns already accepted: `accept` records one and says false for a txn seen before. */
export interface ReplayGuard {
  accept(txn: string, tsMs: number): boolean;
}

async function deploy(args: DeployArgs, c: CommandContext): Result {
  const { deployer, txn } = c;
  if ('candidateId' in args) {
    const f = c.fits.current();
    const entry = f?.frontier.find((e) => e.id === args.candidateId);
    if (!f || !entry) throw new EdgefitError('USAGE', `no candidate '${args.candidateId}' on the stored frontier`);
    const v = await deployer.exclusive(() => deployer.deployEntry(f.fitId, entry, 'command', txn));
    return { deployed: v.version, candidateId: entry.id };
  }
  const maxBytes = c.maxModelMb * 1048576;
  if ((args.modelB64.length * 3) / 4 > maxBytes) throw new EdgefitError('DATA', `shipped model exceeds ${c.maxModelMb} MB`);
  const bytes = Buffer.from(args.modelB64, 'base64');
  const sha = sha256Hex(bytes);
  if (sha !== args.sha256) throw new EdgefitError('INTEGRITY', `shipped model sha256 is ${sha}, the request says ${args.sha256}`);
  // the bytes are bound by the signed request (its args carry them and their sha256, checked above);
  // a separate signature over the model, when given, must verify too
  if (c.signing.mode === 'ed25519' && args.signature && !verifyModelSignature(c.signing.publicKeys, bytes, args.signature))
    throw new EdgefitError('INTEGRITY', 'shipped model signature does not verify');
  await (c.checkRuns ?? checkRuns)(bytes, c.shapes);
  const meta = { fitId: null, candidateId: null, source: 'command', expectSha256: args.sha256 };
  const v = await deployer.exclusive(() => deployer.deployBytes({ bytes }, meta, txn));
  return { deployed: v.version, sha256: v.sha256 };
}

/** A shipped model must load and run on this box's input shapes before it replaces anything. */
async function checkRuns(bytes: Uint8Array, shapes: Record<string, number[]>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-check-'));
  try {
    const p = join(dir, 'model.onnx');
    writeFileSync(p, bytes);
    // in a probe child, like every model run of the agent: a bad model cannot take it down
    await new LatencyProbe(120_000).load(p, shapes, 1);
  } catch (e) {
    throw new EdgefitError('CORRUPT_MODEL', `shipped model does not run: ${oneLine(e)}`, { cause: e });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How much work requests may make (config `commands`, src/config/agent.ts). */
export interface CommandLimits {
  /** Handlers running at once; more wait in a queue of at most maxQueued. */
  maxConcurrent: number;
  maxQueued: number;
  /** Rejections within this many seconds of a reported one go out as one aggregated event. */
  rejectedReportS: number;
  /** Error responses per second (bursts of two seconds' worth); past it, none (counted). */
  rejectedResponsesPerS: number;
}
export const DEFAULT_COMMAND_LIMITS: CommandLimits = { maxConcurrent: 4, maxQueued: 32, rejectedReportS: 10, rejectedResponsesPerS: 20 };

export interface CommandRouterDeps {
  bus: AgentBus;
  deviceId: string;
  signing: SigningConfig;
  /** Where accepted signed txns are recorded (persisted: a restart does not reopen a replay). */
  replay: ReplayGuard;
  /** The handlers' context minus the per-request txn. */
  context: Omit<CommandContext, 'txn' | 'bus' | 'signing'>;
  limits?: Partial<CommandLimits>;
}

export class CommandRouter implements Component {
  private readonly onCommand = (verb: string, payload: Buffer, bytes?: number): void => void this.handle(verb, payload, bytes);
  private readonly limits: CommandLimits;
  readonly rejections: RejectionReporter;
  private running = 0;
  /** Requests waiting for a handler slot, and the payload bytes they hold. */
  private readonly waiting: Array<() => void> = [];
  private waitingBytes = 0;
  /** Requests dropped because the queue was full, since start. */
  busy = 0;

  constructor(private readonly d: CommandRouterDeps) {
    this.limits = { ...DEFAULT_COMMAND_LIMITS, ...d.limits };
    const l = this.limits;
    this.rejections = new RejectionReporter(
      (message, data, txn) => d.bus.report('command-rejected', message, data, txn),
      l.rejectedReportS,
      l.rejectedResponsesPerS,
    );
  }

  start(): void {
    this.d.bus.on('command', this.onCommand);
  }

  stop(): void {
    this.d.bus.off('command', this.onCommand);
    this.rejections.stop();
  }

  /**
   * A handler slot: at most maxConcurrent run, at most maxQueued wait (holding at most one
   * deploy's worth of payload); past that the request is dropped, never queued without bound.
   */
  private async slot(bytes: number): Promise<() => void> {
    const release = (): void => {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
    if (this.running < this.limits.maxConcurrent) {
      this.running++;
      return release;
    }
    if (this.waiting.length >= this.limits.maxQueued || this.waitingBytes + bytes > maxRequestBytes('deploy', this.d.context.maxModelMb)) {
      this.busy++;
      throw new EdgefitError('BUSY', `agent busy: ${this.running} commands running, ${this.waiting.length} waiting; request dropped`);
    }
    this.waitingBytes += bytes;
    // the slot is handed over by release(): `running` stays as it is
    await new Promise<void>((r) => this.waiting.push(r));
    this.waitingBytes -= bytes;
    return release;
  }

  /** Never throws: every outcome is a response (resolves once it has been emitted), except that
   * error responses past the rate limit are not sent. `bytes`: the request's size when it was
   * over the MQTT packet limit and never buffered (`payload` is then empty). */
  async handle(verbRaw: string, payload: Buffer, bytes = payload.length): Promise<void> {
    const verb = /^[A-Za-z0-9_-]{1,32}$/.test(verbRaw) ? verbRaw : 'invalid';
    let txn: string | null = null;
    try {
      const limit = maxRequestBytes(verb, this.d.context.maxModelMb);
      if (bytes > limit) throw new EdgefitError('DATA', `request of ${bytes} bytes exceeds the ${limit} byte limit for '${verb}'`);
      let body: unknown;
      try {
        body = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new EdgefitError('DATA', 'request is not valid JSON');
      }
      if (
        typeof body === 'object' &&
        body !== null &&
        typeof (body as { txn?: unknown }).txn === 'string' &&
        /^[A-Za-z0-9_.:-]{1,64}$/.test((body as { txn: string }).txn)
      ) {
        txn = (body as { txn: string }).txn;
      }
      const req = checkPayload('request', body);
      if (!isCommand(verb)) throw new EdgefitError('USAGE', `unknown verb '${verb}'`);
      if (STATE_CHANGING[verb]) this.authorize(verb, req);
      const args = checkArgs(verb, req.args ?? {});
      const handler = COMMANDS[verb] as (args: unknown, c: CommandContext) => Result;
      const release = await this.slot(payload.length);
      let result: Record<string, unknown>;
      try {
        result = await handler(args, { ...this.d.context, txn: req.txn, bus: this.d.bus, signing: this.d.signing });
      } finally {
        release();
      }
      this.respond(verb, txn, { ok: true, result });
    } catch (e) {
      const code = isEdgefitError(e) ? e.code : 'INTERNAL';
      // under a flood, answers and events are rate limited: one aggregated event per interval
      const answered = this.rejections.mayAnswer();
      if (answered) this.respond(verb, txn, { ok: false, error: { code, message: oneLine(e) } });
      this.rejections.rejected(verb, code, `${verb} rejected: ${oneLine(e)}`, txn, answered);
    }
  }

  /** Throws unless a state-changing request is signed by a pinned key, for this device, and new. */
  private authorize(verb: Verb, req: { txn: string; ts?: number; args?: unknown; sig?: string }): void {
    if (this.d.signing.mode === 'none') throw new EdgefitError('INTEGRITY', READ_ONLY_REFUSAL);
    verifyRequest(this.d.signing, this.d.deviceId, verb, req);
    // recorded before the handler runs: a copy arriving while it runs is refused as well
    if (!this.d.replay.accept(req.txn, req.ts!))
      throw new EdgefitError('INTEGRITY', `txn '${req.txn}' was already accepted: a replayed request is refused`);
  }

  private respond(verb: string, txn: string | null, body: Pick<ResponsePayload, 'ok' | 'result' | 'error'>): void {
    this.d.bus.emit('response', verb, { v: PAYLOAD_VERSION, deviceId: this.d.deviceId, txn, verb, ts: new Date().toISOString(), ...body });
  }
}
