// Request-body buffers for reuse (issue 19). A 640x640 float image is a 4.9 MB body; a fresh
// ArrayBuffer of that size is zeroed and page-faulted in on every request (0.7 ms of the ~1 ms it
// takes to fill one, measured on the dev box), while one already mapped fills in 0.2 ms. The worker
// hands a body back once onnxruntime is done with it (engine RunResult.spent) and the next request
// is read into it. Bounded: at most `maxBuffers` and `maxBytes` held, all dropped after `idleMs`
// without traffic, so an idle server keeps none.
export class BodyPool {
  private readonly free: ArrayBuffer[] = [];
  private held = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxBuffers = 4,
    private readonly maxBytes = 32 * 2 ** 20,
    private readonly idleMs = 10_000,
  ) {}

  /** Buffers held for reuse, and their bytes. */
  get stats(): { buffers: number; bytes: number } {
    return { buffers: this.free.length, bytes: this.held };
  }

  /** A buffer of at least `size` bytes (its contents are stale, not zeroed): the smallest free one that fits, else a new one. */
  take(size: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.byteLength;
      if (n >= size && (best < 0 || n < this.free[best]!.byteLength)) best = i;
    }
    if (best < 0) return new ArrayBuffer(size);
    const b = this.free.splice(best, 1)[0]!;
    this.held -= b.byteLength;
    return b;
  }

  /** Keep `b` for a later take() (dropped when the pool is full; a detached buffer is ignored). */
  give(b: ArrayBuffer): void {
    if (b.byteLength === 0 || this.free.length >= this.maxBuffers || this.held + b.byteLength > this.maxBytes) return;
    if (this.free.includes(b)) return;
    this.free.push(b);
    this.held += b.byteLength;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.clear(), this.idleMs);
    this.timer.unref();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.free.length = 0;
    this.held = 0;
  }
}
