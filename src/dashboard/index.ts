// startDashboard: the one entry point, used by `edgefit dashboard` and by the agent (`npm start`)
// to serve the fleet view beside its embedded broker.
import { join } from 'node:path';
import type { SigningKey } from '../telemetry/signing.js';
import { checkListenPolicy, HostPolicy, loadOrCreateToken } from './auth.js';
import { admitPatterns, type AdmissionOptions } from './admission.js';
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
  /**
   * Login token. A dashboard with a signingKey always requires one: without this option it is
   * generated once and kept in <stateDir>/token (0600); `loginUrl` then carries it.
   */
  token?: string;
  /** names the Host header may carry besides the listen address, localhost, 127.0.0.1 and [::1] */
  allowHosts?: readonly string[];
  /** SSE/SQLite batching period */
  flushMs?: number;
  mqttUsername?: string;
  mqttPassword?: string;
  /** signs requests (the operator key; HMAC only for legacy fleets); without it the dashboard is view-only */
  signingKey?: SigningKey;
  /** CA, client certificate and key for an mqtts:// broker */
  mqttTls?: MqttTlsFiles;
  /** 4: MQTT 3.1.1 from the start (a broker known to lack MQTT 5, as the agent's embedded aedes); default 5, falling back */
  mqttProtocolVersion?: 4 | 5;
  /** new device ids admitted (patterns like 'pi-*'; default all) */
  admit?: readonly string[];
  /** pending pool and admission rate (tests; defaults in admission.ts) */
  admission?: Omit<AdmissionOptions, 'admit' | 'log'>;
  log?: (line: string) => void;
}

/** What a view-only dashboard answers to an action, and shows beside its disabled controls. */
export const VIEW_ONLY_REASON = 'this dashboard holds no operator key: start it with --operator-key';

export interface Dashboard {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** base URL once started */
  readonly url: string;
  /** `url` with ?token=... when a token is required (the one to print once), else `url` */
  readonly loginUrl: string;
  /** where the token came from: given by the caller, the token file (generated now or before), or none (open) */
  readonly tokenSource: 'given' | 'file' | 'none';
  /** no signing key: actions answer 403 and the page disables them */
  readonly viewOnly: boolean;
  readonly port: number;
  readonly fleet: Fleet;
  readonly link: FleetLink;
  readonly http: DashboardHttp;
}

export const DASHBOARD_DEFAULTS = { prefix: 'edgefit', host: '127.0.0.1', port: 8080, flushMs: 250 } as const;

export function startDashboard(opts: DashboardOptions): Dashboard {
  const host = opts.host ?? DASHBOARD_DEFAULTS.host;
  // a dashboard that can send commands gets a token even on loopback: generated if none is given
  if (opts.token !== undefined || !opts.signingKey) checkListenPolicy(host, opts.token);
  // bad --admit patterns or --allow-host names are usage errors before anything starts
  admitPatterns(opts.admit ?? []);
  new HostPolicy(host, opts.allowHosts);
  let token: string | undefined = opts.token;
  const tokenSource: Dashboard['tokenSource'] = opts.token !== undefined ? 'given' : opts.signingKey ? 'file' : 'none';
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
      if (tokenSource === 'file') token = loadOrCreateToken(opts.stateDir).token;
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
          ...(opts.mqttProtocolVersion ? { protocolVersion: opts.mqttProtocolVersion } : {}),
          admission: { ...opts.admission, ...(opts.admit ? { admit: opts.admit } : {}) },
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
          ...(token ? { token } : {}),
          ...(opts.allowHosts ? { allowHosts: opts.allowHosts } : {}),
          actionsOff: opts.signingKey ? null : VIEW_ONLY_REASON,
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
    get loginUrl() {
      return token ? `${dash.url}?token=${encodeURIComponent(token)}` : dash.url;
    },
    tokenSource,
    viewOnly: !opts.signingKey,
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
