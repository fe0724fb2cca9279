// Training yields the CPU to the box's applications. A training fit runs for many minutes on every
// core; nice 10 alone still leaves it a share of a 2-4 core box while an application waits on its
// inference. So while the serve process answers requests the agent holds the training between
// steps (the trainer awaits a gate before each one; held time does not count against its
// minutes), and lets it go on once traffic has been quiet for a while.
import type { ServeStats } from '../serve/types.js';
import type { AgentBus } from './bus.js';

/** The fit child's side: resolves `wait()` at once unless held, else when released. */
export class TrainGate {
  private held = false;
  private waiters: (() => void)[] = [];

  get isHeld(): boolean {
    return this.held;
  }

  set(held: boolean): void {
    this.held = held;
    if (!held) for (const w of this.waiters.splice(0)) w();
  }

  readonly wait = (): Promise<void> => (this.held ? new Promise<void>((r) => this.waiters.push(r)) : Promise.resolve());
}

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
/** A probe waits this long after holding training: one training step of det (about 1.3 s here) ends meanwhile. */
export const PROBE_SETTLE_MS = 1500;

/**
 * The agent's training hold: listens to the serve process's stats on the bus and holds the fit
 * child's training (`hold`) while traffic or a live probe says so, telling it only on a change.
 * `training()` says whether a training fit runs now (events are reported only then).
 */
export class TrainingHold {
  private readonly policy = new HoldPolicy(HOLD_QUIET_MS);
  private timer: NodeJS.Timeout | undefined;
  /** Live probes in progress that hold training (quietFor), besides served traffic. */
  private probes = 0;
  private sent = false;
  hold: ((on: boolean) => void) | undefined;

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
    private readonly training: () => boolean,
  ) {}

  start(hold: ((on: boolean) => void) | undefined): void {
    this.hold = hold;
    this.bus.on('serve:stats', this.onStats);
  }

  stop(): void {
    this.bus.off('serve:stats', this.onStats);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
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
    this.hold?.(on);
  }

  /**
   * Run `f` (a live latency probe) with the agent's own training held: a probe timed while
   * training takes the cores measures the training, and stepped the served model down for it.
   * Waits PROBE_SETTLE_MS first so the step in progress ends (the gate sits between steps).
   */
  async quietFor<T>(f: () => Promise<T>): Promise<T> {
    if (!this.training() || !this.hold) return f();
    this.probes++;
    this.apply();
    try {
      await new Promise((r) => setTimeout(r, PROBE_SETTLE_MS));
      return await f();
    } finally {
      this.probes--;
      this.apply();
    }
  }
}
