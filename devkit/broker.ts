// A real MQTT broker for tests: Mosquitto from Debian on a free loopback port with a generated
// config; where /usr/sbin/mosquitto is absent, an in-process aedes broker (one line says so).
// restart() brings it back on the same port, for outage tests. startTlsBroker: Mosquitto with TLS
// listeners (client certificate or password) and an ACL, the fleet set-up of docs/fleet-broker.md.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Pki } from './pki.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/telemetry/embedded-broker.js';

export const MOSQUITTO = process.env.EDGEFIT_MOSQUITTO ?? '/usr/sbin/mosquitto';
export const MOSQUITTO_PASSWD = process.env.EDGEFIT_MOSQUITTO_PASSWD ?? '/usr/bin/mosquitto_passwd';
const execFileP = promisify(execFile);

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

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => {
      c.destroy();
      resolve(false);
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

/** Mosquitto on `conf`, listening on `port` once up() resolves; stderr kept (last 1 MB) for failures. */
function mosquittoProcess(conf: string, port: number): { up(): Promise<void>; down(): Promise<void>; log(): string } {
  let child: ChildProcess | undefined;
  let log = '';
  const up = async (): Promise<void> => {
    // on restart the port may have been taken meanwhile (as another test's client's source port):
    // waitForPort would then see that listener and report a broker that is not ours
    if (await portOpen(port)) throw new Error(`port ${port} was taken while the broker was down`);
    const c = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    // read stderr: a pipe nobody drains would block the broker once it is full
    c.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-1_000_000);
    });
    const exited = new Promise<never>((_, reject) =>
      c.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) before listening: ${log.trim().slice(-2000)}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port), exited]);
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
  return { up, down, log: () => log };
}

// the plain brokers' folders (config, persistence), removed when the test process exits: a test
// file may start many, and restart() needs its folder after stop()
const brokerDirs = new Set<string>();
const removeBrokerDirs = (): void => {
  for (const d of brokerDirs) rmSync(d, { recursive: true, force: true });
};

/** persistent: Mosquitto keeps sessions across stop()/restart() (stop is a clean SIGTERM). */
export async function startBroker(opts: { persistent?: boolean } = {}): Promise<TestBroker> {
  const port = await freePort();
  if (existsSync(MOSQUITTO)) {
    const dir = mkdtempSync(join(tmpdir(), 'edgefit-mosq-'));
    if (!brokerDirs.size) process.once('exit', removeBrokerDirs);
    brokerDirs.add(dir);
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
    const m = mosquittoProcess(conf, port);
    await m.up();
    return {
      kind: 'mosquitto',
      port,
      url: `mqtt://127.0.0.1:${port}`,
      restart: m.up,
      stop: m.down,
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

export interface TlsBrokerOptions {
  pki: Pki;
  /** ACL file (Mosquitto syntax: `pattern readwrite edgefit/%u/#`, `user dashboard` + `topic ...`), both listeners */
  acl: string;
  /** user name -> password for the password listener (hashed in place with mosquitto_passwd -U) */
  passwords?: Record<string, string>;
}

export interface TlsTestBroker {
  kind: 'mosquitto';
  /** mqtts:// listener requiring a client certificate from the PKI's CA; its CN is the user name */
  certUrl: string;
  certPort: number;
  /** mqtts:// listener taking user name and password (no client certificate) */
  passwordUrl: string;
  passwordPort: number;
  /** the broker's stderr so far (connections, refusals), for failure messages */
  log(): string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

/**
 * Mosquitto with two TLS listeners on free loopback ports and an ACL, as a fleet broker would
 * run (docs/fleet-broker.md): one authenticates by client certificate (use_identity_as_username),
 * one by password file. No anonymous access, no plain-TCP listener. Needs Mosquitto (no aedes
 * fallback: the point is the real broker's TLS and ACL enforcement).
 */
export async function startTlsBroker(opts: TlsBrokerOptions): Promise<TlsTestBroker> {
  if (!existsSync(MOSQUITTO)) throw new Error(`${MOSQUITTO} not found: TLS broker tests need Mosquitto`);
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-mosq-tls-'));
  const certPort = await freePort();
  let passwordPort = await freePort();
  while (passwordPort === certPort) passwordPort = await freePort();
  const acl = join(dir, 'acl');
  writeFileSync(acl, opts.acl, { mode: 0o600 });
  const passwd = join(dir, 'passwd');
  writeFileSync(
    passwd,
    Object.entries(opts.passwords ?? {})
      .map(([u, pw]) => `${u}:${pw}\n`)
      .join(''),
    { mode: 0o600 },
  );
  // -U hashes the plain-text file in place: no password ever appears in a command line
  if (opts.passwords && Object.keys(opts.passwords).length) await execFileP(MOSQUITTO_PASSWD, ['-U', passwd], { timeout: 30_000 });
  const tls = [`cafile ${opts.pki.caFile}`, `certfile ${opts.pki.server.certFile}`, `keyfile ${opts.pki.server.keyFile}`];
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'per_listener_settings true',
      // as root Mosquitto would switch to user 'mosquitto', who cannot read this 0700 folder
      `user ${userInfo().username}`,
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      `listener ${certPort} 127.0.0.1`,
      ...tls,
      'require_certificate true',
      'use_identity_as_username true',
      'allow_anonymous false',
      `acl_file ${acl}`,
      `listener ${passwordPort} 127.0.0.1`,
      ...tls,
      'require_certificate false',
      `password_file ${passwd}`,
      'allow_anonymous false',
      `acl_file ${acl}`,
      '',
    ].join('\n'),
  );
  // kept across stop()/restart(); the folder (keys, password hashes) goes when the process exits
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const m = mosquittoProcess(conf, certPort);
  const up = async (): Promise<void> => {
    await m.up();
    await waitForPort(passwordPort);
  };
  await up();
  return {
    kind: 'mosquitto',
    certUrl: `mqtts://127.0.0.1:${certPort}`,
    certPort,
    passwordUrl: `mqtts://127.0.0.1:${passwordPort}`,
    passwordPort,
    log: m.log,
    restart: up,
    stop: m.down,
  };
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
