// `edgefit keys generate`: an operator key pair (issue 20). Devices pin the public half; the
// dashboard (or a tool) that may command them holds the private half. `edgefit keys fingerprint
// FILE`: what to compare between the two ends (install.sh prints it when pinning).
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { EdgefitError, isEdgefitError } from '../../errors.js';
import { generateOperatorKeys, keyFingerprint } from '../../telemetry/keys.js';
import { loadPrivateKey, loadPublicKey } from '../../telemetry/signing.js';

interface Args {
  action: string;
  file?: string;
  out: string;
  force: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'keys <action> [file]',
  describe:
    "operator keys: `keys generate` makes an Ed25519 pair that devices pin and dashboards sign commands with; `keys fingerprint FILE` prints a key's fingerprint",
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['generate', 'fingerprint'], demandOption: true })
      .positional('file', { type: 'string', describe: 'fingerprint: a PEM public or private operator key' })
      .option('out', { type: 'string', default: '.', describe: 'folder for operator.key (private, 0600) and operator.pub' })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'replace an existing pair (devices pinning the old key stop obeying)',
      }) as never,
  handler: (a) => {
    if (a.action === 'fingerprint') {
      if (!a.file) throw new EdgefitError('USAGE', 'keys fingerprint needs a key file');
      process.stdout.write(`${fingerprintOf(a.file)}\n`);
      return;
    }
    let k;
    try {
      k = generateOperatorKeys(resolve(a.out), a.force);
    } catch (e) {
      if (isEdgefitError(e) && e.code === 'USAGE') throw new EdgefitError('USAGE', `${e.message}; give --force to replace them`);
      throw e;
    }
    process.stdout.write(
      [
        `private key: ${k.keyPath}`,
        `public key:  ${k.pubPath}`,
        `fingerprint: ${k.fingerprint}`,
        `${k.pubPath}: pin it on every device (install.sh --operator-key, or security.operatorKeys in the agent config).`,
        `${k.keyPath}: keep it on the dashboard host only (edgefit dashboard --operator-key ${k.keyPath}); it can command every device that pins the public key.`,
        '',
      ].join('\n'),
    );
  },
};

/** The fingerprint of a PEM public key, or of the public half of a private one. */
function fingerprintOf(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new EdgefitError('FILE_NOT_FOUND', `${file} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  return keyFingerprint(pem.includes('PRIVATE KEY') ? createPublicKey(loadPrivateKey(pem)) : loadPublicKey(pem));
}
