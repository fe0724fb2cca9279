// Training yields the CPU to the box's applications. A training fit runs for many minutes on every
// core; nice 10 alone still leaves it a share of a 2-4 core box while an application waits on its
// inference. So while the serve process answers requests the agent holds the training between
// steps (the trainer awaits a gate before each one; held time does not count against its
// minutes), and lets it go on once traffic has been quiet for a while.
import type { ServeStats } from '../serve/types.js';

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
