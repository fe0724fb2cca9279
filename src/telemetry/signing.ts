// Command signing. The signed bytes are the UTF-8 string
//   `${verb}\n${txn}\n${ts}\n${JSON.stringify(args ?? {})}`
// so the verb (taken from the topic) cannot be swapped, and ts bounds replays. `sig` is base64
// of HMAC-SHA256 (shared secret) or of an ed25519 signature (public key on the device).
import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { EdgefitError } from '../errors.js';

export type SigningConfig =
  { mode: 'none' } | { mode: 'hmac'; secret: string; maxSkewMs: number } | { mode: 'ed25519'; publicKey: KeyObject; maxSkewMs: number };

export function canonicalRequest(verb: string, txn: string, ts: number | undefined, args: unknown): string {
  return `${verb}\n${txn}\n${ts ?? ''}\n${JSON.stringify(args ?? {})}`;
}

export function signHmac(secret: string, verb: string, txn: string, ts: number, args: unknown): string {
  return createHmac('sha256', secret)
    .update(canonicalRequest(verb, txn, ts, args))
    .digest('base64');
}

export function signEd25519(privateKeyPem: string, verb: string, txn: string, ts: number, args: unknown): string {
  const key = createPrivateKey(privateKeyPem);
  return sign(null, Buffer.from(canonicalRequest(verb, txn, ts, args)), key).toString('base64');
}

export function loadPublicKey(pem: string): KeyObject {
  try {
    const k = createPublicKey(pem);
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`key type is ${k.asymmetricKeyType}, not ed25519`);
    return k;
  } catch (e) {
    throw new EdgefitError('CONFIG', `public key is not a PEM ed25519 key: ${(e as Error).message}`, { cause: e });
  }
}

/** Throws EdgefitError('INTEGRITY') unless the request is signed as configured. */
export function verifyRequest(
  cfg: SigningConfig,
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
  const msg = Buffer.from(canonicalRequest(verb, req.txn, req.ts, req.args));
  const sig = Buffer.from(req.sig, 'base64');
  let ok = false;
  if (cfg.mode === 'hmac') {
    const want = createHmac('sha256', cfg.secret).update(msg).digest();
    ok = sig.length === want.length && timingSafeEqual(sig, want);
  } else {
    try {
      ok = verify(null, msg, cfg.publicKey, sig);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new EdgefitError('INTEGRITY', 'request signature does not verify');
}

/** ed25519 signature over the raw model bytes (for models shipped by the deploy verb). */
export function verifyModelSignature(publicKey: KeyObject, bytes: Uint8Array, sigB64: string): boolean {
  try {
    return verify(null, bytes, publicKey, Buffer.from(sigB64, 'base64'));
  } catch {
    return false;
  }
}
