import type { CommandModule } from 'yargs';
import { buildLatencyTables, defaultLatencyCacheDir } from '../../analyze/latency/index.js';
import { formatLatencyTables } from '../../analyze/latency/format.js';
import { EdgefitError } from '../../errors.js';
import { loadModel } from '../../onnx/index.js';
import { normalize } from '../../passes/normalize.js';
import { parseShapes, printJson } from '../output.js';

interface Args {
  model: string;
  shape?: string[];
  threads: number;
  top: number;
  cache: boolean;
  json?: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'latency <model>',
  describe:
    "Measure a model's latency tables on this box: each weight layer's time by kept width, and the channel block the kernels prefer",
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model file' })
      .option('shape', { type: 'string', array: true, describe: 'dims for a dynamic input, e.g. x=1x3x640x640 (repeatable)' })
      .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads to measure with (as the model will run)' })
      .option('top', { type: 'number', default: 10, describe: 'how many of the costliest layers to list' })
      .option('cache', { type: 'boolean', default: true, describe: 'read and write the tables cache (--no-cache: measure afresh)' })
      .option('json', { type: 'boolean', describe: 'print the tables as JSON' }),
  handler: async (a) => {
    if (!Number.isInteger(a.threads) || a.threads < 1) throw new EdgefitError('USAGE', '--threads must be a positive integer');
    if (!Number.isInteger(a.top) || a.top < 0) throw new EdgefitError('USAGE', '--top must be a whole number');
    const model = normalize(loadModel(a.model));
    let measured = 0;
    const tty = process.stderr.isTTY === true && !a.json;
    const tables = await buildLatencyTables(model, {
      shapes: parseShapes(a.shape),
      threads: a.threads,
      cacheDir: a.cache ? defaultLatencyCacheDir() : undefined,
      onProgress: (done, total) => {
        measured++;
        if (tty) process.stderr.write(`\rmeasuring ${done}/${total}${done === total ? '\n' : ''}`);
      },
    });
    if (a.json) return printJson({ ...tables, cached: measured === 0 });
    process.stdout.write(`${formatLatencyTables(tables, { top: a.top, cached: measured === 0 })}\n`);
  },
};
