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
 * The agent's side: from the serve process's stats windows, whether training should be held.
 * Held as soon as a window saw a request (or one is in flight); released after `quietWindows`
 * windows in a row without any, so a client that pauses between bursts does not flap it.
 */
export class HoldPolicy {
  private quiet = 0;
  private held = false;

  constructor(private readonly quietWindows = 2) {}

  get isHeld(): boolean {
    return this.held;
  }

  /** The new state when it changes, else undefined. */
  update(s: Pick<ServeStats, 'requests' | 'inFlight'>): boolean | undefined {
    const busy = s.requests > 0 || s.inFlight > 0;
    this.quiet = busy ? 0 : this.quiet + 1;
    const next = busy ? true : this.held && this.quiet < this.quietWindows;
    if (next === this.held) return undefined;
    this.held = next;
    return next;
  }
}
