// An operator key pair for tests (issue 20): the public file to pin on an agent, and request
// bodies signed with the private half for one device, as a dashboard or tool sends them.
import { readFileSync } from 'node:fs';
import { generateOperatorKeys } from '../../src/telemetry/keys.js';
import { loadPrivateKey, signRequest, type SigningKey } from '../../src/telemetry/signing.js';
import { testDir } from './tmp.js';

export interface Operator {
  dir: string;
  keyFile: string;
  pubFile: string;
  fingerprint: string;
  key: SigningKey;
  /** A request body `{ txn, ts, args, sig }` signed for `deviceId` and `verb`. */
  signed(deviceId: string, verb: string, txn: string, args?: Record<string, unknown>, ts?: number): Record<string, unknown>;
}

/** A signed body for any SigningKey (the legacy HMAC secret too). */
export function signedBody(
  key: SigningKey,
  deviceId: string,
  verb: string,
  txn: string,
  args: Record<string, unknown> = {},
  ts = Date.now(),
): Record<string, unknown> {
  return { txn, ts, args, sig: signRequest(key, deviceId, verb, txn, ts, args) };
}

export function makeOperator(dir = testDir('edgefit-op-')): Operator {
  const k = generateOperatorKeys(dir);
  const key: SigningKey = { mode: 'ed25519', privateKey: loadPrivateKey(readFileSync(k.keyPath, 'utf8')) };
  return {
    dir,
    keyFile: k.keyPath,
    pubFile: k.pubPath,
    fingerprint: k.fingerprint,
    key,
    signed: (deviceId, verb, txn, args = {}, ts = Date.now()) => signedBody(key, deviceId, verb, txn, args, ts),
  };
}
