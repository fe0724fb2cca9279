// Command signing. The signed bytes are the UTF-8 string
//   `edgefit-request-v2\n${deviceId}\n${verb}\n${txn}\n${ts}\n${JSON.stringify(args ?? {})}`
// so neither the device (taken from the topic) nor the verb can be swapped, and ts bounds
// replays. `sig` is base64 of an ed25519 signature by an operator key the device pins, or (legacy,
// explicit only) of HMAC-SHA256 with a shared secret.
import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { EdgefitError } from '../errors.js';

/** How a device checks requests. 'ed25519': any of the pinned operator public keys. */
export type SigningConfig =
  { mode: 'none' } | { mode: 'hmac'; secret: string; maxSkewMs: number } | { mode: 'ed25519'; publicKeys: KeyObject[]; maxSkewMs: number };

/** What a dashboard or tool signs requests with. */
export type SigningKey = { mode: 'hmac'; secret: string } | { mode: 'ed25519'; privateKey: KeyObject };

export const SIGNED_FORMAT = 'edgefit-request-v2';

export function canonicalRequest(deviceId: string, verb: string, txn: string, ts: number | undefined, args: unknown): string {
  return `${SIGNED_FORMAT}\n${deviceId}\n${verb}\n${txn}\n${ts ?? ''}\n${JSON.stringify(args ?? {})}`;
}

/** base64 signature of one request for one device. */
export function signRequest(key: SigningKey, deviceId: string, verb: string, txn: string, ts: number, args: unknown): string {
  const msg = Buffer.from(canonicalRequest(deviceId, verb, txn, ts, args));
  if (key.mode === 'hmac') return createHmac('sha256', key.secret).update(msg).digest('base64');
  return sign(null, msg, key.privateKey).toString('base64');
}

/** A PEM key of one kind, refused in one line unless it is ed25519. */
function ed25519Key(kind: 'private' | 'public', pem: string): KeyObject {
  try {
    const k = kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`key type is ${k.asymmetricKeyType}, not ed25519`);
    return k;
  } catch (e) {
    throw new EdgefitError('CONFIG', `${kind} key is not a PEM ed25519 key: ${(e as Error).message}`, { cause: e });
  }
}

export const loadPrivateKey = (pem: string): KeyObject => ed25519Key('private', pem);

export const loadPublicKey = (pem: string): KeyObject => ed25519Key('public', pem);

/** Throws EdgefitError('INTEGRITY') unless the request is signed as configured. */
export function verifyRequest(
  cfg: SigningConfig,
  deviceId: string,
  verb: string,
  req: { txn: string; ts?: number; args?: unknown; sig?: string },
  now = Date.now(),
): void {
  if (cfg.mode === 'none') return;
  if (!req.sig) throw new EdgefitError('INTEGRITY', 'request is not signed and signing is required');
  if (req.ts === undefined) throw new EdgefitError('INTEGRITY', 'signed request lacks ts');
  if (Math.abs(now - req.ts) > cfg.maxSkewMs) {
    throw new EdgefitError(
      'INTEGRITY',
      `request ts is ${Math.round((now - req.ts) / 1000)} s away from the device clock (limit ${cfg.maxSkewMs / 1000} s)`,
    );
  }
  const msg = Buffer.from(canonicalRequest(deviceId, verb, req.txn, req.ts, req.args));
  const sig = Buffer.from(req.sig, 'base64');
  let ok = false;
  if (cfg.mode === 'hmac') {
    const want = createHmac('sha256', cfg.secret).update(msg).digest();
    ok = sig.length === want.length && timingSafeEqual(sig, want);
  } else {
    ok = cfg.publicKeys.some((k) => {
      try {
        return verify(null, msg, k, sig);
      } catch {
        return false;
      }
    });
  }
  if (!ok) throw new EdgefitError('INTEGRITY', 'request signature does not verify');
}

/** ed25519 signature over the raw model bytes (for models shipped by the deploy verb). */
export function verifyModelSignature(publicKeys: KeyObject[], bytes: Uint8Array, sigB64: string): boolean {
  const sig = Buffer.from(sigB64, 'base64');
  return publicKeys.some((k) => {
    try {
      return verify(null, bytes, k, sig);
    } catch {
      return false;
    }
  });
}
