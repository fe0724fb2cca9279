// `edgefit agent`: run the service (profile, fit, deploy, monitor, report over MQTT).
import type { CommandModule } from 'yargs';
import { loadAgentConfig } from '../../config/agent.js';
import { Agent, sdReady, sdStopping } from '../../agent/index.js';
import { parseShapes } from '../output.js';

interface Args {
  config?: string; broker?: string; 'device-id'?: string; model?: string; shape?: string[]; 'state-dir'?: string;
  'metrics-interval'?: number; 'probe-interval'?: number; 'exit-after'?: number; fitter?: string;
}

export const command: CommandModule<object, Args> = {
  command: 'agent',
  describe: 'run the agent service: profile, fit, deploy, monitor, report over MQTT',
  builder: (y) => y
    .option('config', { type: 'string', describe: 'agent config JSON (schema: src/config/agent.ts)' })
    .option('broker', { type: 'string', describe: 'MQTT broker URL; default: embedded aedes on 127.0.0.1' })
    .option('device-id', { type: 'string', describe: 'default: hash of /etc/machine-id' })
    .option('model', { type: 'string', describe: 'ONNX model; default: bundled PP-OCRv4 det' })
    .option('shape', { type: 'string', array: true, describe: 'input shape name=1x3x640x640 (repeatable)' })
    .option('state-dir', { type: 'string', describe: 'state folder (SQLite, models)' })
    .option('metrics-interval', { type: 'number', describe: 'seconds between metrics messages' })
    .option('probe-interval', { type: 'number', describe: 'seconds between live latency probes' })
    .option('fitter', { type: 'string', choices: ['auto', 'reference-only'], describe: 'fitModel when available, or measure the original only' })
    .option('exit-after', { type: 'number', describe: 'stop cleanly after this many seconds (tests, benchmarks)' }),
  handler: async (argv) => {
    const flags: Record<string, unknown> = {};
    if (argv['device-id']) flags.deviceId = argv['device-id'];
    if (argv['state-dir']) flags.stateDir = argv['state-dir'];
    if (argv['metrics-interval'] !== undefined) flags.metricsIntervalS = argv['metrics-interval'];
    if (argv['probe-interval'] !== undefined) flags.probe = { intervalS: argv['probe-interval'] };
    if (argv.fitter) flags.fitter = argv.fitter;
    if (argv.broker) flags.mqtt = { url: argv.broker };
    const shapes = parseShapes(argv.shape);
    if (argv.model || shapes.size) flags.model = { ...(argv.model ? { path: argv.model } : {}), ...(shapes.size ? { shapes: Object.fromEntries(shapes) } : {}) };
    const cfg = loadAgentConfig({ file: argv.config ?? process.env.EDGEFIT_CONFIG, env: process.env, flags });
    const agent = new Agent(cfg);
    await agent.start();
    const watchdog = sdReady(`device ${agent.deviceId}, broker ${agent.brokerUrl}`);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (why: string): void => {
        if (stopping) return;
        stopping = true;
        agent.log(`stopping (${why})`);
        sdStopping();
        if (watchdog) clearInterval(watchdog);
        void agent.stop().finally(resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      if (argv['exit-after'] !== undefined) setTimeout(() => stop('--exit-after'), argv['exit-after'] * 1000);
    });
    // onnxruntime's thread pool can keep the loop alive; state is flushed, so leave now
    process.exit(0);
  },
};
