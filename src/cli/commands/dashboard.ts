// `edgefit dashboard`: serve the fleet view for every device on a broker.
import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { EdgefitError } from '../../errors.js';
import { DASHBOARD_DEFAULTS, startDashboard } from '../../dashboard/index.js';
import { loadPrivateKey, type SigningKey } from '../../telemetry/signing.js';

interface Args {
  broker: string;
  port: number;
  host: string;
  'state-dir': string;
  token?: string;
  prefix: string;
  'operator-key'?: string;
  'mqtt-ca'?: string;
  'mqtt-cert'?: string;
  'mqtt-key'?: string;
  'mqtt-insecure': boolean;
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
  operatorKey: 'EDGEFIT_OPERATOR_KEY_FILE',
  hmac: 'EDGEFIT_HMAC_SECRET',
  /** the legacy secret's older name */
  hmacOld: 'EDGEFIT_COMMAND_SECRET',
  mqttUser: 'EDGEFIT_MQTT_USERNAME',
  mqttPass: 'EDGEFIT_MQTT_PASSWORD',
  mqttCa: 'EDGEFIT_MQTT_CA_FILE',
  mqttCert: 'EDGEFIT_MQTT_CERT_FILE',
  mqttKey: 'EDGEFIT_MQTT_KEY_FILE',
} as const;

export const command: CommandModule<object, Args> = {
  command: 'dashboard',
  describe: 'serve the fleet dashboard (devices, frontiers, history, actions) over HTTP',
  builder: (y) =>
    y
      .option('broker', { type: 'string', default: 'mqtt://127.0.0.1:1883', describe: 'MQTT broker URL (mqtts:// for TLS)' })
      .option('mqtt-ca', { type: 'string', describe: `CA certificate (PEM) the broker's certificate must chain to (or ${ENV.mqttCa})` })
      .option('mqtt-cert', { type: 'string', describe: `client certificate (PEM) for the broker (or ${ENV.mqttCert})` })
      .option('mqtt-key', { type: 'string', describe: `client key (PEM) for --mqtt-cert (or ${ENV.mqttKey})` })
      .option('mqtt-insecure', {
        type: 'boolean',
        default: false,
        describe: 'accept any broker certificate (test brokers only: anyone on the path can read and forge traffic)',
      })
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
      .option('operator-key', {
        type: 'string',
        describe: `operator private key (PEM, from \`edgefit keys generate\`; or ${ENV.operatorKey}): signs the commands devices pinning its public half obey`,
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
        `Environment: ${ENV.operatorKey} names the operator private key; ${ENV.hmac} is the LEGACY shared secret (HMAC) ` +
          `for agents configured with security.hmacSecretFile; ${ENV.mqttUser}/${ENV.mqttPass} authenticate to the broker.`,
      )
      .option('prefix', { type: 'string', default: DASHBOARD_DEFAULTS.prefix, describe: 'MQTT topic prefix of the fleet' }) as never,
  handler: async (a) => {
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535)
      throw new EdgefitError('USAGE', `--port must be 0..65535, got ${a.port}`);
    const env = process.env;
    const token = a.token ?? env[ENV.token];
    const signingKey = operatorSigningKey(a['operator-key'] ?? env[ENV.operatorKey], env[ENV.hmac] ?? env[ENV.hmacOld]);
    const caFile = a['mqtt-ca'] ?? env[ENV.mqttCa];
    const certFile = a['mqtt-cert'] ?? env[ENV.mqttCert];
    const keyFile = a['mqtt-key'] ?? env[ENV.mqttKey];
    const dash = startDashboard({
      broker: a.broker,
      port: a.port,
      host: a.host,
      stateDir: a['state-dir'],
      prefix: a.prefix,
      ...(token ? { token } : {}),
      ...(signingKey ? { signingKey } : {}),
      ...(list(a['allow-host']).length ? { allowHosts: list(a['allow-host']) } : {}),
      ...(list(a.admit).length ? { admit: list(a.admit) } : {}),
      ...(env[ENV.mqttUser] ? { mqttUsername: env[ENV.mqttUser] } : {}),
      ...(env[ENV.mqttPass] ? { mqttPassword: env[ENV.mqttPass] } : {}),
      mqttTls: {
        ...(caFile ? { caFile } : {}),
        ...(certFile ? { certFile } : {}),
        ...(keyFile ? { keyFile } : {}),
        rejectUnauthorized: !a['mqtt-insecure'],
      },
      log: (l) => process.stderr.write(`edgefit dashboard: ${l}\n`),
    });
    await dash.start();
    const signs = !signingKey
      ? 'view only: no operator key'
      : signingKey.mode === 'ed25519'
        ? 'commands signed with the operator key'
        : 'commands signed with the LEGACY shared secret';
    // a generated (or earlier generated) token is printed once, in the URL that logs in with it
    const shown = dash.tokenSource === 'file' ? dash.loginUrl : dash.url;
    process.stdout.write(`edgefit dashboard: ${shown} (broker ${a.broker}, prefix ${a.prefix}; ${signs})\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await dash.stop();
  },
};

/** The operator key file wins over the legacy secret; a key that cannot be read is a usage error, not a silent fallback. */
function operatorSigningKey(keyFile: string | undefined, hmac: string | undefined): SigningKey | undefined {
  if (keyFile) {
    let pem: string;
    try {
      pem = readFileSync(keyFile, 'utf8');
    } catch (e) {
      throw new EdgefitError('FILE_NOT_FOUND', `operator key ${keyFile} cannot be read: ${(e as Error).message}`, { cause: e });
    }
    return { mode: 'ed25519', privateKey: loadPrivateKey(pem) };
  }
  return hmac ? { mode: 'hmac', secret: hmac } : undefined;
}
