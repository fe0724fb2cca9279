// A test-side MQTT client that records every message and waits for the one a test needs.
import mqtt, { type MqttClient } from 'mqtt';

export interface Msg {
  topic: string;
  payload: Buffer;
  retain: boolean;
  json(): any;
}

export class Watcher {
  readonly msgs: Msg[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.msgs.push({ topic, payload, retain: packet.retain, json: () => JSON.parse(payload.toString()) });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** With a clientId the session is persistent (clean: false), so nothing is missed while reconnecting. */
  static async connect(url: string, topics: string[], clientId?: string): Promise<Watcher> {
    const client = mqtt.connect(url, { reconnectPeriod: 200, clean: clientId === undefined, ...(clientId ? { clientId } : {}) });
    const w = new Watcher(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => client.subscribe(topics, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
      client.once('error', reject);
    });
    return w;
  }

  /** Resolve with the first message (from index `from`) matching, or reject after timeoutMs. */
  async waitFor(pred: (m: Msg) => boolean, timeoutMs: number, from = 0, what = 'message'): Promise<Msg> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.msgs.slice(from).find(pred);
      if (hit) return hit;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  publish(topic: string, body: unknown): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.publish(topic, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 }, (e) => (e ? reject(e) : resolve())),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.end(true, {}, () => resolve()));
  }
}
