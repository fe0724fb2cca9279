// A real MQTT broker for tests: Mosquitto from Debian on a free loopback port with a generated
// config; where /usr/sbin/mosquitto is absent, an in-process aedes broker (one line says so).
// restart() brings it back on the same port, for outage tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/telemetry/embedded-broker.js';

export const MOSQUITTO = process.env.EDGEFIT_MOSQUITTO ?? '/usr/sbin/mosquitto';

export interface TestBroker {
  kind: 'mosquitto' | 'aedes';
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Start again on the same port after stop(). */
  restart(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve();
      });
      c.once('error', () => {
        c.destroy();
        if (Date.now() > until) reject(new Error(`broker did not listen on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** persistent: Mosquitto keeps sessions across stop()/restart() (stop is a clean SIGTERM). */
export async function startBroker(opts: { persistent?: boolean } = {}): Promise<TestBroker> {
  const port = await freePort();
  if (existsSync(MOSQUITTO)) {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-mosq-'));
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        ...(opts.persistent ? ['persistence true', `persistence_location ${dir}/`] : ['persistence false']),
        'log_dest stderr',
        'log_type error',
        '',
      ].join('\n'),
    );
    let child: ChildProcess | undefined;
    const up = async (): Promise<void> => {
      child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      await waitForPort(port);
    };
    const down = (): Promise<void> =>
      new Promise((resolve) => {
        const c = child;
        child = undefined;
        if (!c || c.exitCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
        setTimeout(() => c.kill('SIGKILL'), 3000).unref();
      });
    await up();
    return {
      kind: 'mosquitto',
      port,
      url: `mqtt://127.0.0.1:${port}`,
      restart: up,
      stop: async () => {
        await down();
      },
      // the folder is removed on process exit
    };
  }
  process.stdout.write(`# ${MOSQUITTO} not found: broker-backed tests run against the embedded aedes broker\n`);
  let b: EmbeddedBroker | undefined = await startEmbeddedBroker('127.0.0.1', port, () => undefined);
  return {
    kind: 'aedes',
    port,
    url: `mqtt://127.0.0.1:${port}`,
    restart: async () => {
      b = await startEmbeddedBroker('127.0.0.1', port, () => undefined);
    },
    stop: async () => {
      await b?.close();
      b = undefined;
    },
  };
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
