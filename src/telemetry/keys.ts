// Operator key pairs (issue 20): the private half signs commands (a dashboard, a tool), the public
// half is pinned by devices. Files are PEM: operator.key (PKCS8, 0600) and operator.pub (SPKI).
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { loadPrivateKey, loadPublicKey } from './signing.js';

export const OPERATOR_KEY_FILE = 'operator.key';
export const OPERATOR_PUB_FILE = 'operator.pub';

export interface OperatorKeyFiles {
  keyPath: string;
  pubPath: string;
  /** sha256 of the public key's SPKI DER, hex, first 16 characters: what an operator compares. */
  fingerprint: string;
}

export function keyFingerprint(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/**
 * A new Ed25519 pair in `dir`. The private key is written first, atomically and 0600 from its
 * first byte; existing files are never replaced unless `force` (a lost private key cannot be
 * recovered, and devices pinning the old public key would stop obeying).
 */
export function generateOperatorKeys(dir: string, force = false): OperatorKeyFiles {
  const keyPath = join(dir, OPERATOR_KEY_FILE);
  const pubPath = join(dir, OPERATOR_PUB_FILE);
  if (!force) {
    const there = [keyPath, pubPath].filter((p) => existsSync(p));
    if (there.length)
      throw new EdgefitError('USAGE', `${there.join(' and ')} already exist${there.length === 1 ? 's' : ''}; refusing to overwrite`);
  }
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  writeFileAtomic(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  writeFileAtomic(pubPath, publicKey.export({ type: 'spki', format: 'pem' }) as string, 0o644);
  return { keyPath, pubPath, fingerprint: keyFingerprint(publicKey) };
}

/** The pair in `dir`, created when absent (the agent's zero-setup key for its built-in dashboard). */
export function ensureOperatorKeys(dir: string): OperatorKeyFiles & { privateKey: KeyObject; publicKey: KeyObject; created: boolean } {
  const keyPath = join(dir, OPERATOR_KEY_FILE);
  const pubPath = join(dir, OPERATOR_PUB_FILE);
  const created = !existsSync(keyPath) || !existsSync(pubPath);
  if (created) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    generateOperatorKeys(dir, true);
  }
  // a copy restored with the wrong mode is made private again: only this user may sign
  chmodSync(keyPath, 0o600);
  const privateKey = loadPrivateKey(readFileSync(keyPath, 'utf8'));
  const publicKey = loadPublicKey(readFileSync(pubPath, 'utf8'));
  // the two files must be one pair: a stray .pub would pin a key nobody here holds
  const derived = keyFingerprint(createPublicKey(privateKey));
  if (derived !== keyFingerprint(publicKey)) throw new EdgefitError('CONFIG', `${pubPath} is not the public half of ${keyPath}`);
  return { keyPath, pubPath, fingerprint: derived, privateKey, publicKey, created };
}

/** Pinned public keys from PEM files (security.operatorKeys). */
export function readPublicKeys(files: readonly string[]): KeyObject[] {
  return files.map((f) => {
    if (!existsSync(f)) throw new EdgefitError('FILE_NOT_FOUND', `operator public key ${f} does not exist`);
    try {
      return loadPublicKey(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new EdgefitError('CONFIG', `${f}: ${(e as Error).message}`, { cause: e });
    }
  });
}
