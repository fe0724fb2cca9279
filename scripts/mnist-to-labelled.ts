// CLI over devkit/mnist-to-labelled.ts: the mnist package's digits as a labelled folder (x.npy, labels.txt).
//   node dist/scripts/mnist-to-labelled.js <outDir> [--split test|train] [--limit N]
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeMnistLabelled, type Split } from '../devkit/mnist-to-labelled.js';
import { EdgefitError, oneLine } from '../src/errors.js';

function cli(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        split: { type: 'string', default: 'test' },
        limit: { type: 'string' },
        verbose: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    throw new EdgefitError('USAGE', oneLine(e), { cause: e });
  }
  const { positionals, values } = parsed;
  if (positionals.length !== 1) {
    throw new EdgefitError('USAGE', 'usage: mnist-to-labelled <outDir> [--split test|train] [--limit N]');
  }
  const split = values.split as Split;
  let limit: number | undefined;
  if (values.limit !== undefined) {
    if (!/^\d+$/.test(values.limit)) throw new EdgefitError('USAGE', `--limit must be a positive integer, got ${values.limit}`);
    limit = Number(values.limit);
  }
  const r = writeMnistLabelled(resolve(positionals[0]!), { split, limit });
  process.stdout.write(`${r.count} samples (${split}) -> ${r.xPath}, ${r.labelsPath}; per digit ${r.perDigit.join(' ')}\n`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = cli(process.argv.slice(2));
  } catch (e) {
    const verbose = process.argv.includes('--verbose');
    process.stderr.write(`mnist-to-labelled: ${verbose && e instanceof Error ? e.stack : oneLine(e)}\n`);
    process.exitCode = e instanceof EdgefitError ? e.exitCode : 1;
  }
}
