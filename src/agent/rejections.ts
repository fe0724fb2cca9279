// Rejected requests cost the agent little, but each used to become an event in the outbox: a flood
// of 5,000 junk requests queued 5,000 `command-rejected` events ahead of the metrics (103 s of
// delay, issue 20). Here a rejection after a quiet spell is reported at once, as before (a
// mistaken command shows with its message and txn); the ones that follow within `intervalS` are
// counted and go out as one event per interval ("4,987 requests rejected in the last 10 s: 4,980
// INTEGRITY, 7 DATA; first txn ..."). Error responses are rate limited the same way (a token
// bucket): past it a rejected request gets no answer, and the aggregate says how many did not.

export interface RejectionWindow {
  count: number;
  byCode: Record<string, number>;
  byVerb: Record<string, number>;
  firstTxn: string | null;
  lastTxn: string | null;
  firstMessage: string;
  /** Rejections that got no error response (over the response rate). */
  unanswered: number;
}

export type ReportFn = (message: string, data: Record<string, unknown>, txn: string | undefined) => void;

const fmt = (n: number): string => n.toLocaleString('en-US');
/** Distinct verbs named in one aggregate (any string of 32 characters can be a verb); the rest: 'other'. */
const MAX_KEYS = 16;
const MAX_MESSAGE = 300;

function count(by: Record<string, number>, key: string): void {
  const k = Object.hasOwn(by, key) || Object.keys(by).length < MAX_KEYS ? key : 'other';
  by[k] = (by[k] ?? 0) + 1;
}

/** "4,980 INTEGRITY, 7 DATA": largest first. */
function tally(by: Record<string, number>): string {
  return Object.entries(by)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${fmt(n)} ${k}`)
    .join(', ');
}

export class RejectionReporter {
  private window: RejectionWindow | undefined;
  private timer: NodeJS.Timeout | undefined;
  private tokens: number;
  private refilledAt: number;
  /** Totals since start, for tests and logs. */
  readonly totals = { rejected: 0, reported: 0, unanswered: 0 };

  constructor(
    private readonly report: ReportFn,
    private readonly intervalS: number,
    private readonly responsesPerS: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = this.burst;
    this.refilledAt = now();
  }

  /** Two seconds' worth of responses may go out at once. */
  private get burst(): number {
    return Math.max(1, 2 * this.responsesPerS);
  }

  /** Whether this rejection may be answered; call once per rejection, before rejected(). */
  mayAnswer(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.refilledAt) / 1000) * this.responsesPerS);
    this.refilledAt = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  rejected(verb: string, code: string, message: string, txn: string | null, answered: boolean): void {
    this.totals.rejected++;
    if (!answered) this.totals.unanswered++;
    if (!this.window) {
      // quiet until now: this one goes out whole, and a window opens for what may follow
      this.emit(message, { verb, code }, txn ?? undefined);
      this.open();
      return;
    }
    const w = this.window;
    w.count++;
    count(w.byCode, code);
    count(w.byVerb, verb);
    w.firstTxn ??= txn;
    if (txn !== null) w.lastTxn = txn;
    if (w.count === 1) w.firstMessage = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message;
    if (!answered) w.unanswered++;
  }

  /** Report what the open window holds (at stop). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
    this.window = undefined;
  }

  private open(): void {
    // null prototypes: a verb named __proto__ is just a key
    this.window = {
      count: 0,
      byCode: Object.create(null) as Record<string, number>,
      byVerb: Object.create(null) as Record<string, number>,
      firstTxn: null,
      lastTxn: null,
      firstMessage: '',
      unanswered: 0,
    };
    this.timer = setTimeout(() => this.tick(), this.intervalS * 1000);
    this.timer.unref();
  }

  private tick(): void {
    this.timer = undefined;
    // a window with rejections in it is reported and another opens; an empty one ends the spell
    if (this.flush()) this.open();
    else this.window = undefined;
  }

  private flush(): boolean {
    const w = this.window;
    if (!w || w.count === 0) return false;
    const first = w.firstTxn ? `; first txn ${w.firstTxn}` : '';
    const unanswered = w.unanswered ? `; ${fmt(w.unanswered)} not answered (over ${this.responsesPerS}/s)` : '';
    const plural = w.count === 1 ? 'request' : 'requests';
    this.emit(
      `${fmt(w.count)} ${plural} rejected in the last ${this.intervalS} s: ${tally(w.byCode)}${first}${unanswered} (e.g. ${w.firstMessage})`,
      {
        count: w.count,
        intervalS: this.intervalS,
        byCode: w.byCode,
        byVerb: w.byVerb,
        firstTxn: w.firstTxn,
        lastTxn: w.lastTxn,
        unanswered: w.unanswered,
      },
      undefined,
    );
    return true;
  }

  private emit(message: string, data: Record<string, unknown>, txn: string | undefined): void {
    this.totals.reported++;
    this.report(message, data, txn);
  }
}
