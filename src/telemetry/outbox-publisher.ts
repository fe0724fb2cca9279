// Drains the SQLite outbox to the broker: one message in flight at a time, oldest first, a
// row deleted only after the broker's PUBACK, at most `ratePerSec` messages per second so a
// device coming back from a long outage does not flood the broker. Delivery is at-least-once:
// a PUBACK lost with the connection means that message is sent again (receivers dedupe by seq).

export interface OutboxRow {
  id: number;
  topic: string;
  payload: string;
}
export interface OutboxSource {
  peek(limit: number): OutboxRow[];
  ack(id: number): void;
}
export interface Publisher {
  readonly connected: boolean;
  publish(topic: string, payload: string): Promise<void>;
}

export class OutboxPublisher {
  private running = false;
  private stopped = true;
  private again = false;
  sent = 0;

  constructor(
    private readonly source: OutboxSource,
    private readonly pub: Publisher,
    private readonly ratePerSec: number,
  ) {}

  start(): void {
    this.stopped = false;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
  }

  /** Call after an enqueue or a (re)connect; safe to call any time. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.drain().finally(() => {
      this.running = false;
      if (this.again && !this.stopped) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Resolves when the loop is idle (nothing pending or not connected). */
  async idle(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 10));
  }

  private async drain(): Promise<void> {
    const gapMs = 1000 / this.ratePerSec;
    while (!this.stopped && this.pub.connected) {
      const [row] = this.source.peek(1);
      if (!row) return;
      const t0 = Date.now();
      try {
        await this.pub.publish(row.topic, row.payload);
      } catch {
        return; // connection went away; the row stays and goes first after reconnect
      }
      this.source.ack(row.id);
      this.sent++;
      const wait = gapMs - (Date.now() - t0);
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
  }
}
