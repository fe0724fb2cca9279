// Device admission: who becomes a row in the fleet table. Anyone who may publish under the
// prefix can invent device ids, so a global table cap let 20,010 fake ids fill the table and
// refuse the next real device. Instead:
//  - devices the dashboard already knows (its SQLite) are always accepted, never evicted;
//  - a new id must match an --admit pattern (default: every id);
//  - it then waits in a bounded pending pool (count and bytes, least recently seen evicted first,
//    ids that sent a single message before those that sent more) until it has sent a valid
//    status AND valid metrics, as a real agent does at start; junk that publishes one message
//    per id never gets further than the pool;
//  - at most `perInterval` devices are promoted per interval (the rest wait for their next
//    message), and what happened is logged as one aggregated line per interval.
import { EdgefitError } from '../errors.js';
import type { EventPayload, MetricsPayload, ProfilePayload, StatusPayload } from '../telemetry/payloads.js';

export const ADMISSION_DEFAULTS = {
  /** ids waiting to prove they are devices */
  pendingMax: 1000,
  /** bytes of buffered payloads across the pool (a profile is a few KB; this bounds the worst case) */
  pendingBytes: 8 * 1024 * 1024,
  /** events buffered per pending id (a real agent sends 'deployed' and a few more at start) */
  eventsPerPending: 8,
  /** new fleet rows per interval */
  perInterval: 500,
  intervalMs: 10_000,
} as const;

export interface AdmissionOptions {
  /** id patterns ('pi-*', 'jetson-??'); default: every id */
  admit?: readonly string[];
  pendingMax?: number;
  pendingBytes?: number;
  perInterval?: number;
  intervalMs?: number;
  log?: (line: string) => void;
}

/** What a pending id has sent so far (the latest of each kind), replayed into the fleet on admission. */
export interface PendingDevice {
  id: string;
  status: StatusPayload | null;
  profile: ProfilePayload | null;
  metrics: MetricsPayload | null;
  events: EventPayload[];
  messages: number;
  /** its retained status was asked for once (it sent metrics after its status had been evicted) */
  statusAsked: boolean;
  /** payload bytes held: the latest of each kind plus the buffered events */
  bytes: number;
  sizes: { status: number; profile: number; metrics: number; events: number[] };
}

export type Offer =
  | { kind: 'status'; body: StatusPayload }
  | { kind: 'profile'; body: ProfilePayload }
  | { kind: 'metrics'; body: MetricsPayload }
  | { kind: 'event'; body: EventPayload };

/** 'pi-*,jetson-??' -> a RegExp; ids are [A-Za-z0-9_.-], so only * and ? are special. */
export function admitPatterns(patterns: readonly string[]): RegExp | null {
  const list = patterns.map((p) => p.trim()).filter(Boolean);
  if (!list.length || list.includes('*')) return null;
  for (const p of list) {
    if (!/^[A-Za-z0-9_.*?-]{1,64}$/.test(p)) {
      throw new EdgefitError('USAGE', `bad admit pattern '${p}': device ids are letters, digits, '_', '.', '-' with * and ? as wildcards`);
    }
  }
  const re = list.map((p) => p.replace(/\./g, '\\.').replace(/\*/g, '[A-Za-z0-9_.-]*').replace(/\?/g, '[A-Za-z0-9_.-]')).join('|');
  return new RegExp(`^(?:${re})$`);
}

export interface AdmissionStats {
  pending: number;
  pendingBytes: number;
  admitted: number;
  refused: number;
  evicted: number;
  deferred: number;
}

export class Admission {
  private readonly pattern: RegExp | null;
  /** ids that sent one message, and ids that sent more: Map order is least recently seen first */
  private readonly once = new Map<string, PendingDevice>();
  private readonly more = new Map<string, PendingDevice>();
  private bytes = 0;
  private windowStart = 0;
  private windowAdmitted = 0;
  /** counts since the last log line */
  private tally = { admitted: 0, refused: 0, evicted: 0, deferred: 0 };
  /** counts since start */
  readonly totals = { admitted: 0, refused: 0, evicted: 0, deferred: 0 };
  private timer: NodeJS.Timeout | null = null;
  private readonly max: number;
  private readonly maxBytes: number;
  private readonly perInterval: number;
  private readonly intervalMs: number;

  constructor(private readonly opts: AdmissionOptions = {}) {
    this.pattern = admitPatterns(opts.admit ?? []);
    this.max = opts.pendingMax ?? ADMISSION_DEFAULTS.pendingMax;
    this.maxBytes = opts.pendingBytes ?? ADMISSION_DEFAULTS.pendingBytes;
    this.perInterval = opts.perInterval ?? ADMISSION_DEFAULTS.perInterval;
    this.intervalMs = opts.intervalMs ?? ADMISSION_DEFAULTS.intervalMs;
  }

  /** Start the once-per-interval log line. */
  start(): void {
    this.timer = setInterval(() => this.report(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.report();
  }

  /** Whether a new id may even wait in the pool (the --admit patterns). */
  allowed(id: string): boolean {
    return this.pattern === null || this.pattern.test(id);
  }

  /**
   * A valid message from an id the fleet does not know. Returns the pending record when the id
   * has now proven itself (status and metrics) and fits this interval's admissions; the caller
   * replays it into the fleet. null: refused by pattern, or still waiting.
   */
  offer(id: string, m: Offer, size: number, now = Date.now()): PendingDevice | null {
    if (!this.allowed(id)) {
      this.refuse();
      return null;
    }
    let p = this.once.get(id) ?? this.more.get(id);
    if (p) {
      this.remove(p);
    } else {
      p = {
        id,
        status: null,
        profile: null,
        metrics: null,
        events: [],
        messages: 0,
        statusAsked: false,
        bytes: 0,
        sizes: { status: 0, profile: 0, metrics: 0, events: [] },
      };
    }
    p.messages++;
    // keep the latest of each kind; bytes count what is held (payload sizes), not what arrived
    const z = p.sizes;
    switch (m.kind) {
      case 'status':
        p.status = m.body;
        z.status = size;
        break;
      case 'profile':
        p.profile = m.body;
        z.profile = size;
        break;
      case 'metrics':
        p.metrics = m.body;
        z.metrics = size;
        break;
      case 'event':
        p.events.push(m.body);
        z.events.push(size);
        if (p.events.length > ADMISSION_DEFAULTS.eventsPerPending) {
          p.events.shift();
          z.events.shift();
        }
        break;
    }
    p.bytes = z.status + z.profile + z.metrics + z.events.reduce((a, b) => a + b, 0);
    if (p.status && p.metrics) {
      if (now - this.windowStart >= this.intervalMs) {
        this.windowStart = now;
        this.windowAdmitted = 0;
      }
      if (this.windowAdmitted < this.perInterval) {
        this.windowAdmitted++;
        this.count('admitted');
        return p;
      }
      this.count('deferred');
    }
    this.insert(p);
    return null;
  }

  private insert(p: PendingDevice): void {
    (p.messages > 1 ? this.more : this.once).set(p.id, p);
    this.bytes += p.bytes;
    while (this.once.size + this.more.size > this.max || (this.bytes > this.maxBytes && this.once.size + this.more.size > 1)) {
      // junk that sent one message goes first; among equals the least recently seen
      const victim = (this.once.size ? this.once : this.more).values().next().value as PendingDevice;
      this.remove(victim);
      this.count('evicted');
    }
  }

  private remove(p: PendingDevice): void {
    if (this.once.delete(p.id) || this.more.delete(p.id)) this.bytes -= p.bytes;
  }

  /**
   * True once for an id that waits with metrics but no status: its status was evicted (or came
   * before the dashboard subscribed), so the caller asks the broker for the retained one.
   */
  wantsStatus(id: string): boolean {
    const p = this.once.get(id) ?? this.more.get(id);
    if (!p || p.status || !p.metrics || p.statusAsked) return false;
    p.statusAsked = true;
    return true;
  }

  /** A message from an id the admit patterns exclude (counted for the log line). */
  refuse(): void {
    this.count('refused');
  }

  private count(k: keyof typeof this.tally): void {
    this.tally[k]++;
    this.totals[k]++;
  }

  stats(): AdmissionStats {
    return { pending: this.once.size + this.more.size, pendingBytes: this.bytes, ...this.totals };
  }

  /** One line for what happened since the last one (nothing when nothing did). */
  report(): void {
    const t = this.tally;
    if (!t.admitted && !t.refused && !t.evicted && !t.deferred) return;
    this.opts.log?.(
      `device admission: ${t.admitted} admitted, ${t.deferred} deferred by the rate cap (${this.perInterval} per ${this.intervalMs / 1000} s), ` +
        `${t.evicted} evicted from the pending pool (${this.once.size + this.more.size} waiting), ${t.refused} refused by the admit patterns`,
    );
    this.tally = { admitted: 0, refused: 0, evicted: 0, deferred: 0 };
  }
}
