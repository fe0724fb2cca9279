// `edgefit keys generate` (issue 20): an Ed25519 pair, the private half 0600 and never silently
// replaced, the fingerprint printed is the public key's, and the pair signs what it verifies.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../../devkit/paths.js';
import { keyFingerprint } from '../../src/telemetry/keys.js';
import { loadPrivateKey, loadPublicKey, signRequest, verifyRequest } from '../../src/telemetry/signing.js';
import { testDir } from '../helpers/tmp.js';

const dir = testDir('edgefit-keys-');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'keys', ...args], { encoding: 'utf8' });

t.test('generate: PKCS8 key 0600, SPKI pub, fingerprint, what to do with each half', async (t) => {
  const out = join(dir, 'k');
  const r = run('generate', '--out', out);
  t.equal(r.status, 0, r.stderr);
  const keyPath = join(out, 'operator.key');
  const pubPath = join(out, 'operator.pub');
  t.equal(statSync(keyPath).mode & 0o777, 0o600);
  const pem = readFileSync(keyPath, 'utf8');
  t.match(pem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS8 PEM');
  t.match(readFileSync(pubPath, 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/, 'SPKI PEM');
  const pub = loadPublicKey(readFileSync(pubPath, 'utf8'));
  const fp = keyFingerprint(pub);
  t.match(fp, /^[0-9a-f]{16}$/);
  t.match(r.stdout, `fingerprint: ${fp}`);
  t.match(r.stdout, keyPath);
  t.match(r.stdout, pubPath);
  t.match(r.stdout, /pin it on every device/);
  t.match(r.stdout, /edgefit dashboard --operator-key/);

  // one pair: a request signed with the key verifies with the public half, for its device only
  const key = { mode: 'ed25519' as const, privateKey: loadPrivateKey(pem) };
  const ts = Date.now();
  const req = { txn: 'k1', ts, args: { latencyMs: 5 }, sig: signRequest(key, 'dev-a', 'set-budget', 'k1', ts, { latencyMs: 5 }) };
  const cfg = { mode: 'ed25519' as const, publicKeys: [pub], maxSkewMs: 60_000 };
  t.doesNotThrow(() => verifyRequest(cfg, 'dev-a', 'set-budget', req));
  t.throws(() => verifyRequest(cfg, 'dev-b', 'set-budget', req), /does not verify/);

  // never replaced silently
  const again = run('generate', '--out', out);
  t.equal(again.status, 2);
  t.match(again.stderr, /already exist; refusing to overwrite; give --force to replace them/);
  t.equal(readFileSync(keyPath, 'utf8'), pem, 'the key is untouched');
  const forced = run('generate', '--out', out, '--force');
  t.equal(forced.status, 0);
  t.not(readFileSync(keyPath, 'utf8'), pem, '--force makes a new pair');
  t.equal(statSync(keyPath).mode & 0o777, 0o600);
});

t.test('an unknown action is a usage error', async (t) => {
  const r = run('rotate');
  t.equal(r.status, 2);
});
