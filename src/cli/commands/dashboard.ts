// `edgefit dashboard`: serve the fleet view for every device on a broker.
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { DASHBOARD_DEFAULTS, startDashboard } from '../../dashboard/index.js';

interface Args {
  broker: string;
  port: number;
  host: string;
  'state-dir': string;
  token?: string;
  prefix: string;
  'allow-host'?: string[];
  admit?: string[];
}

/** Repeatable flags that also take comma lists: --admit 'pi-*,jetson-*'. */
const list = (v: string[] | undefined): string[] =>
  (v ?? [])
    .flatMap((x) => String(x).split(','))
    .map((x) => x.trim())
    .filter(Boolean);
// Secrets come from the environment rather than flags so they stay out of `ps` output.
const ENV = {
  token: 'EDGEFIT_DASHBOARD_TOKEN',
  hmac: 'EDGEFIT_COMMAND_SECRET',
  mqttUser: 'EDGEFIT_MQTT_USERNAME',
  mqttPass: 'EDGEFIT_MQTT_PASSWORD',
} as const;

export const command: CommandModule<object, Args> = {
  command: 'dashboard',
  describe: 'serve the fleet dashboard (devices, frontiers, history, actions) over HTTP',
  builder: (y) =>
    y
      .option('broker', { type: 'string', default: 'mqtt://127.0.0.1:1883', describe: 'MQTT broker URL' })
      .option('port', { type: 'number', default: DASHBOARD_DEFAULTS.port, describe: 'HTTP port (0 = any free port)' })
      .option('host', {
        type: 'string',
        default: DASHBOARD_DEFAULTS.host,
        describe: 'address to listen on; anything but loopback needs --token',
      })
      .option('state-dir', { type: 'string', default: '.edgefit/dashboard', describe: 'folder for the dashboard SQLite file' })
      .option('token', {
        type: 'string',
        describe: `access token (or ${ENV.token}); required beyond localhost, and generated into <state-dir>/token when the dashboard can send commands`,
      })
      .option('allow-host', {
        type: 'string',
        array: true,
        describe: 'another name browsers reach the dashboard by (e.g. behind a proxy): name or name:port; repeatable or comma-separated',
      })
      .option('admit', {
        type: 'string',
        array: true,
        describe: "device id patterns that may join the fleet (e.g. 'pi-*,jetson-*'); default: all",
      })
      .epilogue(
        `Environment: ${ENV.hmac} signs requests (HMAC) for agents that require signed commands; ${ENV.mqttUser}/${ENV.mqttPass} authenticate to the broker.`,
      )
      .option('prefix', { type: 'string', default: DASHBOARD_DEFAULTS.prefix, describe: 'MQTT topic prefix of the fleet' }) as never,
  handler: async (a) => {
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535)
      throw new EdgefitError('USAGE', `--port must be 0..65535, got ${a.port}`);
    const env = process.env;
    const token = a.token ?? env[ENV.token];
    const hmac = env[ENV.hmac];
    const dash = startDashboard({
      broker: a.broker,
      port: a.port,
      host: a.host,
      stateDir: a['state-dir'],
      prefix: a.prefix,
      ...(token ? { token } : {}),
      ...(list(a['allow-host']).length ? { allowHosts: list(a['allow-host']) } : {}),
      ...(list(a.admit).length ? { admit: list(a.admit) } : {}),
      ...(hmac ? { signingKey: { mode: 'hmac' as const, secret: hmac } } : {}),
      ...(env[ENV.mqttUser] ? { mqttUsername: env[ENV.mqttUser] } : {}),
      ...(env[ENV.mqttPass] ? { mqttPassword: env[ENV.mqttPass] } : {}),
      log: (l) => process.stderr.write(`edgefit dashboard: ${l}\n`),
    });
    await dash.start();
    // a generated (or earlier generated) token is printed once, in the URL that logs in with it
    const shown = dash.tokenSource === 'file' ? dash.loginUrl : dash.url;
    const mode = dash.viewOnly ? ', view only: no operator key' : '';
    process.stdout.write(`edgefit dashboard: ${shown} (broker ${a.broker}, prefix ${a.prefix}${mode})\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await dash.stop();
  },
};
