// The dashboard beside a running agent (`npm start`): same broker, loopback only, and never a
// reason for the agent to fail: a busy port or an unusual topic layout is logged and skipped.
// Given the agent's operator key it can send commands, so it then requires a login token even
// on loopback (any local process or web page could otherwise drive the agent): the token is kept
// in <stateDir>/dashboard/token and the URL carrying it is logged once at start.
import { join } from 'node:path';
import { oneLine } from '../errors.js';
import type { SigningKey } from '../telemetry/signing.js';
import { startDashboard, type Dashboard } from './index.js';
import { PREFIX_RE } from './link.js';
import type { MqttTlsFiles } from '../telemetry/tls.js';

/**
 * The fleet prefix the dashboard subscribes under, from the agent's per-device topic prefix:
 * 'edgefit/{deviceId}/' or 'edgefit/<id>/' -> 'edgefit'. null when the device id is not the
 * last level (the dashboard's `<prefix>/+/...` subscriptions could not match it).
 */
export function fleetPrefixOf(agentPrefix: string | null | undefined, deviceId: string): string | null {
  if (!agentPrefix) return 'edgefit';
  const p = agentPrefix.replace(/\/+$/, '');
  for (const tail of ['/{deviceId}', `/${deviceId}`]) {
    if (p.endsWith(tail)) {
      const fleet = p.slice(0, -tail.length);
      return PREFIX_RE.test(fleet) ? fleet : null;
    }
  }
  return null;
}

export interface LocalDashboardOptions {
  broker: string;
  deviceId: string;
  /** the agent's cfg.mqtt.topicPrefix */
  topicPrefix?: string | null;
  /** the agent's state folder; the dashboard keeps its SQLite file in <stateDir>/dashboard */
  stateDir: string;
  port?: number;
  signingKey?: SigningKey;
  mqttUsername?: string;
  mqttPassword?: string;
  /** the agent's own TLS files: the dashboard connects to the same broker as the agent */
  mqttTls?: MqttTlsFiles;
  mqttProtocolVersion?: 4 | 5;
  log: (line: string) => void;
}

/** Start the dashboard on 127.0.0.1 for a local agent; null (and one log line) when it cannot. */
export async function startLocalDashboard(o: LocalDashboardOptions): Promise<Dashboard | null> {
  const prefix = fleetPrefixOf(o.topicPrefix, o.deviceId);
  if (!prefix) {
    o.log(`dashboard not started: topic prefix '${o.topicPrefix}' does not end with the device id`);
    return null;
  }
  const dash = startDashboard({
    broker: o.broker,
    prefix,
    host: '127.0.0.1',
    port: o.port ?? 8080,
    stateDir: join(o.stateDir, 'dashboard'),
    log: o.log,
    ...(o.signingKey ? { signingKey: o.signingKey } : {}),
    ...(o.mqttUsername ? { mqttUsername: o.mqttUsername } : {}),
    ...(o.mqttPassword ? { mqttPassword: o.mqttPassword } : {}),
    ...(o.mqttTls ? { mqttTls: o.mqttTls } : {}),
    ...(o.mqttProtocolVersion ? { mqttProtocolVersion: o.mqttProtocolVersion } : {}),
  });
  try {
    await dash.start();
  } catch (e) {
    o.log(`dashboard not started: ${oneLine(e)}`);
    return null;
  }
  // the login URL (with ?token=) when a token is required, once; the plain URL for a view-only one
  o.log(o.signingKey ? `dashboard: ${dash.loginUrl} (open once to log in)` : `dashboard: ${dash.url} (view only: no operator key)`);
  return dash;
}
