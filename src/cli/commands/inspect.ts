import type { CommandModule } from 'yargs';
import { inspectModel, formatInspect } from '../../analyze/inspect.js';
import { loadModel } from '../../onnx/index.js';
import { normalize } from '../../passes/normalize.js';
import { parseShapes, printJson } from '../output.js';

interface Args {
  model: string;
  shape?: string[];
  json?: boolean;
  all?: boolean;
}

export const command: CommandModule<object, Args> = {
  command: 'inspect <model>',
  describe: "Show a model's layers, parameters, MACs, weight and activation memory",
  builder: (y) =>
    y
      .positional('model', { type: 'string', demandOption: true, describe: 'ONNX model file' })
      .option('shape', { type: 'string', array: true, describe: 'dims for a dynamic input, e.g. x=1x3x640x640 (repeatable)' })
      .option('json', { type: 'boolean', describe: 'print one JSON object' })
      .option('all', { type: 'boolean', describe: 'list every layer, including those without weights or MACs' }),
  handler: async (argv) => {
    const report = await inspectModel(argv.model, normalize(loadModel(argv.model)), parseShapes(argv.shape));
    if (argv.json) printJson(report);
    else process.stdout.write(`${formatInspect(report, { all: argv.all })}\n`);
  },
};
