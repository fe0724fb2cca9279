// Training yields the CPU to the box's applications. A training fit runs for many minutes on every
// core; nice 10 alone still leaves it a share of a 2-4 core box while an application waits on its
// inference. So while the serve process answers requests the agent holds the training between
// steps (the trainer awaits a gate before each one; held time does not count against its
// minutes), and lets it go on once traffic has been quiet for a while.
import type { ServeStats } from '../serve/types.js';
import type { AgentBus } from './bus.js';

/**
 * The fit child's side: resolves `wait()` at once unless held, else when released. `parked` is
 * told once per hold when the training has stopped at the gate (a waiter is parked): only then is
 * the box free of it (before the first step and after the last the trainer builds graphs, computes
 * targets and measures candidates, none of which the gate stops).
 */
export class TrainGate {
  private held = false;
  private told = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly parked?: () => void) {}

  get isHeld(): boolean {
    return this.held;
  }

  set(held: boolean): void {
    this.held = held;
    if (!held) {
      this.told = false;
      for (const w of this.waiters.splice(0)) w();
    } else if (this.waiters.length) this.tell();
  }

  readonly wait = (): Promise<void> => {
    if (!this.held) return Promise.resolve();
    const p = new Promise<void>((r) => this.waiters.push(r));
    this.tell();
    return p;
  };

  private tell(): void {
    if (this.told) return;
    this.told = true;
    this.parked?.();
  }
}

/**
 * How the agent holds a fitter's training: `hold(true, parked)` asks it to stop at its next gate
 * and calls `parked` once it has; `hold(false)` lets it go on.
 */
export type HoldLink = (on: boolean, parked?: () => void) => void;

/**
 * The agent's side: whether training should be held, from the serve process's stats windows (it
 * sends one every few seconds, and only for windows that saw requests). Held as soon as a window
 * saw a request (or one is in flight); released by `tick` once `quietMs` have passed without a
 * busy window, so a client that pauses between bursts does not flap it.
 */
export class HoldPolicy {
  private lastBusy = -Infinity;
  private held = false;

  constructor(private readonly quietMs = 15_000) {}

  get isHeld(): boolean {
    return this.held;
  }

  /** A stats window: true when it holds training now (it was not held), else undefined. */
  update(s: Pick<ServeStats, 'requests' | 'inFlight'>, now = Date.now()): true | undefined {
    if (s.requests <= 0 && s.inFlight <= 0) return undefined;
    this.lastBusy = now;
    if (this.held) return undefined;
    this.held = true;
    return true;
  }

  /** false when quiet long enough to release it now, else undefined. */
  tick(now = Date.now()): false | undefined {
    if (!this.held || now - this.lastBusy < this.quietMs) return undefined;
    this.held = false;
    return false;
  }
}

/** Served traffic must be quiet this long before a held training goes on (three stats windows). */
export const HOLD_QUIET_MS = 15_000;
/**
 * A probe waits at most this long for the held training to stop at its gate (a training step of
 * det takes 0.3-1.3 s here; building the training graph or measuring a candidate much longer).
 */
export const PROBE_PARK_MS = 5000;

/** What a live probe was timed beside: nothing of the agent's, or the agent's own fit (why). */
export interface Quiet<T> {
  value: T;
  /** Set when the agent's own fit was using the cores meanwhile: the figure is the box's, not a throttle's. */
  busy?: string;
}

/** What the fit manager is doing: nothing, a fit measuring candidates, or a training fit. */
export type FitActivity = { kind: 'idle' } | { kind: 'measuring' | 'training'; fitId: number };

/**
 * The agent's training hold: listens to the serve process's stats on the bus and holds the fit
 * child's training (`hold`) while traffic or a live probe says so, telling it only on a change.
 * `activity()` says what the fit manager runs now (events are reported only while it trains).
 */
export class TrainingHold {
  private readonly policy = new HoldPolicy(HOLD_QUIET_MS);
  private timer: NodeJS.Timeout | undefined;
  /** Live probes in progress that hold training (quietFor), besides served traffic. */
  private probes = 0;
  private sent = false;
  /** The held training has stopped at its gate (told by the fitter since the last hold). */
  private parked = false;
  private parkedWaiters: (() => void)[] = [];
  hold: HoldLink | undefined;

  private readonly onStats = (s: ServeStats): void => {
    if (!this.policy.update(s)) return;
    this.traffic(true, `training held: the box is serving requests (${s.requests} in the last ${Math.round(s.windowS)} s)`);
    this.timer ??= setInterval(() => {
      if (this.policy.tick() === false) this.traffic(false, `training resumed: no served requests for ${HOLD_QUIET_MS / 1000} s`);
    }, 1000);
    this.timer.unref();
  };

  constructor(
    private readonly bus: AgentBus,
    private readonly activity: () => FitActivity,
    private readonly parkMs = PROBE_PARK_MS,
  ) {}

  start(hold: HoldLink | undefined): void {
    this.hold = hold;
    this.bus.on('serve:stats', this.onStats);
  }

  stop(): void {
    this.bus.off('serve:stats', this.onStats);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private training(): boolean {
    return this.activity().kind === 'training';
  }

  private traffic(on: boolean, message: string): void {
    if (!on && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.apply();
    if (this.training()) this.bus.report(on ? 'training-held' : 'training-resumed', message, {});
  }

  private apply(): void {
    const on = this.policy.isHeld || this.probes > 0;
    if (on === this.sent) return;
    this.sent = on;
    this.parked = false;
    if (!on) return this.hold?.(false);
    this.hold?.(true, () => {
      // a late word from a hold since released does not count
      if (!this.sent) return;
      this.parked = true;
      for (const w of this.parkedWaiters.splice(0)) w();
    });
  }

  /**
   * Whether the agent's own fit uses the cores now (why), or undefined when it does not: no fit
   * runs, or its training is held and has stopped at its gate. A latency timed meanwhile measures
   * the agent's own work, which no step down or up should answer.
   */
  busy(): string | undefined {
    const a = this.activity();
    if (a.kind === 'idle') return undefined;
    if (a.kind === 'measuring') return `fit ${a.fitId} is measuring candidates on this box`;
    return this.parked ? undefined : `fit ${a.fitId} is training on this box`;
  }

  /**
   * Run `f` (a live latency probe) with the agent's own training held: a probe timed while
   * training takes the cores measures the training, and stepped the served model down for it.
   * Waits (at most parkMs) until the training has stopped at its gate; the result says when the
   * agent's own fit was busy meanwhile all the same (it was measuring, or did not stop in time).
   */
  async quietFor<T>(f: () => Promise<T>): Promise<Quiet<T>> {
    if (!this.training() || !this.hold) {
      const value = await f();
      const busy = this.busy();
      return busy ? { value, busy } : { value };
    }
    this.probes++;
    this.apply();
    try {
      if (!this.parked) {
        let timer: NodeJS.Timeout | undefined;
        let done: (() => void) | undefined;
        await new Promise<void>((r) => {
          done = r;
          this.parkedWaiters.push(r);
          timer = setTimeout(r, this.parkMs);
        });
        clearTimeout(timer);
        this.parkedWaiters = this.parkedWaiters.filter((w) => w !== done);
      }
      const before = this.busy();
      const value = await f();
      const busy = before ?? this.busy();
      return busy ? { value, busy } : { value };
    } finally {
      this.probes--;
      this.apply();
    }
  }
}
