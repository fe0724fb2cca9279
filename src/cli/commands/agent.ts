// `edgefit agent`: run the service (profile, fit, deploy, monitor, report over MQTT), and beside
// it, on 127.0.0.1, the fleet dashboard when the broker is embedded (`npm start`).
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import type { CommandModule } from 'yargs';
import { dashboardPort, loadAgentConfig, TRAIN_MINUTES_DEFAULT, type AgentConfig } from '../../config/agent.js';
import { Agent, sdReady, sdStopping } from '../../agent/index.js';
import { EdgefitError, oneLine } from '../../errors.js';
import { readSourcesFromDir } from '../../profile/sources.js';
import type { SigningKey } from '../../telemetry/signing.js';
import { parseShapes } from '../output.js';

interface Args {
  config?: string;
  broker?: string;
  'device-id'?: string;
  model?: string;
  calib?: string;
  judge?: string;
  shape?: string[];
  'state-dir'?: string;
  'facts-dir'?: string;
  'metrics-interval'?: number;
  'probe-interval'?: number;
  'exit-after'?: number;
  fitter?: string;
  'train-minutes'?: number;
  'dashboard-port'?: number;
  dashboard?: boolean;
  'serve-port'?: number;
  serve?: boolean;
  'operator-key'?: string[];
}

interface Stoppable {
  stop(): Promise<void>;
}

/** The local dashboard, or null: off by config, or it could not start (logged, never fatal). */
async function startDashboardFor(agent: Agent, cfg: AgentConfig): Promise<Stoppable | null> {
  const port = dashboardPort(cfg);
  if (port === null) return null;
  try {
    // loaded only when wanted: the service configuration never carries the dashboard's code
    const { startLocalDashboard } = await import('../../dashboard/embed.js');
    // the zero-setup key (embedded loopback broker, nothing configured), else the legacy secret; a
    // pinned operator key's private half is never on the device, so the dashboard here only watches
    let signingKey: SigningKey | undefined = agent.localOperatorKey;
    if (!signingKey && agent.control === 'hmac-legacy' && cfg.security.hmacSecretFile)
      signingKey = { mode: 'hmac', secret: readFileSync(cfg.security.hmacSecretFile, 'utf8').trim() };
    if (!signingKey)
      agent.log(
        `dashboard: it holds no operator key, so its actions are refused (${agent.control}); use \`edgefit dashboard --operator-key FILE\` where the key is`,
      );
    return await startLocalDashboard({
      broker: agent.brokerUrl,
      deviceId: agent.deviceId,
      topicPrefix: cfg.mqtt.topicPrefix,
      stateDir: agent.stateDir,
      port,
      log: (l) => agent.log(l),
      ...(signingKey ? { signingKey } : {}),
      ...(cfg.mqtt.username ? { mqttUsername: cfg.mqtt.username } : {}),
      ...(cfg.mqtt.password ? { mqttPassword: cfg.mqtt.password } : {}),
      // the embedded aedes speaks 3.1.1 only: no refused MQTT 5 attempt (and its EPIPE lines) first
      ...(cfg.mqtt.url ? {} : { mqttProtocolVersion: 4 as const }),
      mqttTls: {
        ...(cfg.mqtt.caFile ? { caFile: cfg.mqtt.caFile } : {}),
        ...(cfg.mqtt.certFile ? { certFile: cfg.mqtt.certFile } : {}),
        ...(cfg.mqtt.keyFile ? { keyFile: cfg.mqtt.keyFile } : {}),
        rejectUnauthorized: cfg.mqtt.rejectUnauthorized,
      },
    });
  } catch (e) {
    agent.log(`dashboard not started: ${oneLine(e)}`);
    return null;
  }
}

export const command: CommandModule<object, Args> = {
  command: 'agent',
  describe: 'run the agent service: profile, fit, deploy, monitor, report over MQTT',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'agent config JSON (schema: src/config/agent.ts)' })
      .option('broker', { type: 'string', describe: 'MQTT broker URL; default: embedded aedes on 127.0.0.1' })
      .option('device-id', { type: 'string', describe: 'default: hash of /etc/machine-id' })
      .option('model', { type: 'string', describe: 'ONNX model; default: bundled PP-OCRv4 det' })
      .option('calib', {
        type: 'string',
        describe: 'calibration data for fits; default: bundled text images for the bundled model, else synthetic',
      })
      .option('judge', {
        type: 'string',
        describe:
          "data fits judge candidates on; default: bundled judge images for the bundled model, else --calib's judge/ subfolder or a split of it",
      })
      .option('shape', { type: 'string', array: true, describe: 'input shape name=1x3x640x640 (repeatable)' })
      .option('state-dir', { type: 'string', describe: 'state folder (SQLite, models)' })
      .option('facts-dir', {
        type: 'string',
        describe: 'read hardware facts from this captured facts folder instead of the live machine (docs/facts-dir.md)',
      })
      .option('metrics-interval', { type: 'number', describe: 'seconds between metrics messages' })
      .option('probe-interval', { type: 'number', describe: 'seconds between live latency probes' })
      .option('fitter', {
        type: 'string',
        choices: ['auto', 'reference-only'],
        describe: 'fitModel when available, or measure the original only',
      })
      .option('train-minutes', {
        type: 'number',
        describe: `minutes the second, training fit may spend after the first fit is deployed (train.minutes; 0: no training; default ${TRAIN_MINUTES_DEFAULT})`,
      })
      .option('dashboard-port', {
        type: 'number',
        describe: 'serve the dashboard on 127.0.0.1:<port>; 0 = off (default: 8080 with the embedded broker, off otherwise)',
      })
      .option('dashboard', { type: 'boolean', describe: '--no-dashboard: do not serve the dashboard (same as --dashboard-port 0)' })
      .option('serve-port', {
        type: 'number',
        describe: 'serve the deployed model on 127.0.0.1:<port> (KServe v2 HTTP; default 8551; 0: any free port)',
      })
      .option('serve', { type: 'boolean', describe: '--no-serve: do not serve the deployed model to local applications' })
      .option('operator-key', {
        type: 'string',
        array: true,
        describe:
          'pin this PEM ed25519 public key (repeatable; security.operatorKeys): commands that change the device must be signed by it',
      })
      .option('exit-after', { type: 'number', describe: 'stop cleanly after this many seconds (tests, benchmarks)' })
      .check((a) => {
        const p = a['dashboard-port'];
        if (p !== undefined && (!Number.isInteger(p) || p < 0 || p > 65535))
          throw new EdgefitError('USAGE', `--dashboard-port must be an integer 0..65535, got ${String(p)}`);
        const sp = a['serve-port'];
        if (sp !== undefined && (!Number.isInteger(sp) || sp < 0 || sp > 65535))
          throw new EdgefitError('USAGE', `--serve-port must be an integer 0..65535, got ${String(sp)}`);
        const tm = a['train-minutes'];
        if (tm !== undefined && !(Number.isFinite(tm) && tm >= 0 && tm <= 1440))
          throw new EdgefitError('USAGE', `--train-minutes must be 0 to 1440 minutes, got ${String(tm)}`);
        return true;
      }),
  handler: async (argv) => {
    const flags: Record<string, unknown> = {};
    if (argv['device-id']) flags.deviceId = argv['device-id'];
    if (argv['state-dir']) flags.stateDir = argv['state-dir'];
    if (argv['facts-dir']) flags.hardware = { factsDir: argv['facts-dir'] };
    if (argv['metrics-interval'] !== undefined) flags.metricsIntervalS = argv['metrics-interval'];
    if (argv['probe-interval'] !== undefined) flags.probe = { intervalS: argv['probe-interval'] };
    if (argv.fitter) flags.fitter = argv.fitter;
    if (argv['train-minutes'] !== undefined) flags.train = { minutes: argv['train-minutes'] };
    if (argv.broker) flags.mqtt = { url: argv.broker };
    if (argv.dashboard === false) flags.dashboard = { port: 0 };
    else if (argv['dashboard-port'] !== undefined) flags.dashboard = { port: argv['dashboard-port'] };
    if (argv.serve === false) flags.serve = { enabled: false };
    else if (argv['serve-port'] !== undefined) flags.serve = { port: argv['serve-port'] };
    if (argv['operator-key']?.length) flags.security = { operatorKeys: argv['operator-key'] };
    const shapes = parseShapes(argv.shape);
    if (argv.model || argv.calib || argv.judge || shapes.size)
      flags.model = {
        ...(argv.model ? { path: argv.model } : {}),
        ...(argv.calib ? { calib: argv.calib } : {}),
        ...(argv.judge ? { judge: argv.judge } : {}),
        ...(shapes.size ? { shapes: Object.fromEntries(shapes) } : {}),
      };
    const cfg = loadAgentConfig({ file: argv.config ?? process.env.EDGEFIT_CONFIG, env: process.env, flags });
    // a mistyped facts folder fails here, in one line, before the broker and serving start
    if (cfg.hardware.factsDir !== null) readSourcesFromDir(cfg.hardware.factsDir);
    // A long-running service (issue 20 soak): its live memory is flat (heap snapshots after GC,
    // heaptrack's live malloc), yet RSS rose ~0.35 MB a minute with a probe every 2 s. Each probe
    // forks a child whose handles, streams and closures outlive a scavenge of the small young
    // generation (--max-semi-space-size=1) and die in the old one, which V8 lets grow by 8+ MB
    // before a full GC and whose freed pages it keeps. Memory-optimised heap sizing (a 2 MB step,
    // a conservative growing factor) collects that garbage early; the heap reads the flag at
    // each GC, so setting it here covers every launcher (unit, npm start, the bare CLI).
    setFlagsFromString('--optimize-for-size');
    const agent = new Agent(cfg);
    // signals are taken before start(): a SIGTERM while the agent profiles, opens its store and
    // starts its broker and serve process (seconds on a Pi) must still end in a clean stop (state
    // flushed, children told to go) rather than Node's default kill. A second signal during start
    // gives up waiting.
    let early: string | undefined;
    let onSignal = (why: string): void => {
      if (early !== undefined) process.exit(why === 'SIGINT' ? 130 : 143);
      early = why;
      agent.log(`${why} while starting: stopping once started (again to exit now)`);
    };
    const sigterm = (): void => onSignal('SIGTERM');
    const sigint = (): void => onSignal('SIGINT');
    process.on('SIGTERM', sigterm);
    process.on('SIGINT', sigint);
    await agent.start();
    const dashboard = await startDashboardFor(agent, cfg);
    const watchdog = sdReady(`device ${agent.deviceId}, broker ${agent.brokerUrl}`);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (why: string): void => {
        if (stopping) return;
        stopping = true;
        agent.log(`stopping (${why})`);
        sdStopping();
        if (watchdog) clearInterval(watchdog);
        // the dashboard goes first: it is a client of the agent's (maybe embedded) broker
        void (dashboard?.stop() ?? Promise.resolve())
          .catch((e: unknown) => agent.log(`dashboard stop: ${oneLine(e)}`))
          .then(() => agent.stop())
          .finally(resolve);
      };
      // a second signal while stopping exits at once (what Ctrl-C twice means to a user)
      onSignal = (why) => (stopping ? process.exit(why === 'SIGINT' ? 130 : 143) : stop(why));
      if (early !== undefined) stop(early);
      if (argv['exit-after'] !== undefined) setTimeout(() => stop('--exit-after'), argv['exit-after'] * 1000);
    });
    // state is flushed and children are told to go; a lingering socket must not keep us here
    process.exit(0);
  },
};
