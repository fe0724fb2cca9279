// startDashboard: the one entry point, used by `edgefit dashboard` and by the agent (`npm start`)
// to serve the fleet view beside its embedded broker.
import { join } from 'node:path';
import type { SigningKey } from '../telemetry/signing.js';
import { checkListenPolicy } from './auth.js';
import { Fleet } from './fleet.js';
import { FleetLink } from './link.js';
import { DashboardHttp } from './server.js';
import { DashboardStore } from './store.js';
import type { MqttTlsFiles } from '../telemetry/tls.js';

export interface DashboardOptions {
  /** MQTT broker URL, e.g. mqtt://127.0.0.1:1883 */
  broker: string;
  prefix?: string;
  host?: string;
  /** 0 picks a free port (tests) */
  port?: number;
  stateDir: string;
  token?: string;
  /** SSE/SQLite batching period */
  flushMs?: number;
  mqttUsername?: string;
  mqttPassword?: string;
  /** signs requests (the operator key; HMAC only for legacy fleets) */
  signingKey?: SigningKey;
  /** CA, client certificate and key for an mqtts:// broker */
  mqttTls?: MqttTlsFiles;
  /** ignore devices beyond this many (default 20,000) */
  maxDevices?: number;
  log?: (line: string) => void;
}

export interface Dashboard {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** base URL once started */
  readonly url: string;
  readonly port: number;
  readonly fleet: Fleet;
  readonly link: FleetLink;
  readonly http: DashboardHttp;
}

export const DASHBOARD_DEFAULTS = { prefix: 'edgefit', host: '127.0.0.1', port: 8080, flushMs: 250 } as const;

export function startDashboard(opts: DashboardOptions): Dashboard {
  const host = opts.host ?? DASHBOARD_DEFAULTS.host;
  checkListenPolicy(host, opts.token);
  let store: DashboardStore | null = null;
  let fleet: Fleet | null = null;
  let link: FleetLink | null = null;
  let http: DashboardHttp | null = null;
  const need = <T>(v: T | null): T => {
    if (v === null) throw new Error('dashboard not started');
    return v;
  };
  const dash: Dashboard = {
    async start() {
      store = new DashboardStore(join(opts.stateDir));
      fleet = new Fleet(store);
      link = new FleetLink(
        {
          broker: opts.broker,
          prefix: opts.prefix ?? DASHBOARD_DEFAULTS.prefix,
          ...(opts.mqttUsername ? { username: opts.mqttUsername } : {}),
          ...(opts.mqttPassword ? { password: opts.mqttPassword } : {}),
          ...(opts.signingKey ? { signingKey: opts.signingKey } : {}),
          ...(opts.mqttTls ? { tls: opts.mqttTls } : {}),
          ...(opts.maxDevices ? { maxDevices: opts.maxDevices } : {}),
          ...(opts.log ? { log: opts.log } : {}),
        },
        fleet,
        store,
      );
      http = new DashboardHttp(
        {
          host,
          port: opts.port ?? DASHBOARD_DEFAULTS.port,
          flushMs: opts.flushMs ?? DASHBOARD_DEFAULTS.flushMs,
          ...(opts.token ? { token: opts.token } : {}),
        },
        fleet,
        store,
        link,
      );
      try {
        await link.start();
        await http.start();
      } catch (e) {
        await dash.stop();
        throw e;
      }
    },
    async stop() {
      await http?.stop();
      await link?.stop();
      // last flush so nothing that arrived is lost
      try {
        fleet?.flush();
      } catch {
        /* store may be closed already */
      }
      store?.close();
      http = null;
      link = null;
      fleet = null;
      store = null;
    },
    get url() {
      return `http://${host.includes(':') ? `[${host}]` : host}:${need(http).port}/`;
    },
    get port() {
      return need(http).port;
    },
    get fleet() {
      return need(fleet);
    },
    get link() {
      return need(link);
    },
    get http() {
      return need(http);
    },
  };
  return dash;
}
