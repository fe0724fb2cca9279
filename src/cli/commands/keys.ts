// `edgefit keys generate`: an operator key pair (issue 20). Devices pin the public half; the
// dashboard (or a tool) that may command them holds the private half.
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { EdgefitError, isEdgefitError } from '../../errors.js';
import { generateOperatorKeys } from '../../telemetry/keys.js';

interface Args {
  action: string;
  out: string;
  force: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'keys <action>',
  describe: 'operator keys: `keys generate` makes an Ed25519 pair that devices pin and dashboards sign commands with',
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['generate'], demandOption: true })
      .option('out', { type: 'string', default: '.', describe: 'folder for operator.key (private, 0600) and operator.pub' })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'replace an existing pair (devices pinning the old key stop obeying)',
      }) as never,
  handler: (a) => {
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
