// TLS for every MQTT link (agent, dashboard, simulator): one reading of the PEM files and one
// set of checks, so a CA given with a plain mqtt:// URL cannot silently send credentials in clear.
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { EdgefitError } from '../errors.js';

/** Paths of PEM files (read at start, never taken from a payload) and the server-check switch. */
export interface MqttTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** false accepts any server certificate: only for a test broker with a throw-away CA */
  rejectUnauthorized?: boolean;
}

/**
 * Schemes mqtt.js runs over TLS. 'tls:' and 'ssl:' are left out on purpose: mqtt.js throws
 * "Unknown protocol for secure connection" for them as soon as a client certificate is given.
 */
const TLS_SCHEMES = ['mqtts:', 'wss:'] as const;

export function isTlsUrl(url: string): boolean {
  try {
    return (TLS_SCHEMES as readonly string[]).includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

/** The client options for `url` with these files: ca/cert/key read now, errors as CONFIG. */
export function mqttTlsOptions(url: string, t: MqttTlsFiles): Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  const given = [t.caFile && 'caFile', t.certFile && 'certFile', t.keyFile && 'keyFile'].filter(Boolean);
  if (!!t.certFile !== !!t.keyFile) {
    throw new EdgefitError('CONFIG', `MQTT client certificate needs both certFile and keyFile (only ${given.join(', ')} given)`);
  }
  if (given.length && !isTlsUrl(url)) {
    // mqtt.js would upgrade mqtt:// to TLS when a cert is given but ignore a lone CA: refuse both
    throw new EdgefitError('CONFIG', `MQTT ${given.join(', ')} given but broker URL ${redact(url)} is not TLS: use mqtts:// (or wss://)`);
  }
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new EdgefitError('CONFIG', `cannot read MQTT TLS ${what} ${path}: ${(e as Error).message}`, { cause: e });
    }
  };
  return {
    ...(t.caFile ? { ca: read('CA file', t.caFile) } : {}),
    ...(t.certFile ? { cert: read('certificate', t.certFile) } : {}),
    ...(t.keyFile ? { key: read('key', t.keyFile) } : {}),
    rejectUnauthorized: t.rejectUnauthorized !== false,
  };
}

/** The URL without a password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
