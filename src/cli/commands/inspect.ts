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
    const shapes = parseShapes(argv.shape);
    const report = await inspectModel(argv.model, normalize(loadModel(argv.model)), shapes);
    if (argv.json) return printJson(report);
    process.stdout.write(`${formatInspect(report, { all: argv.all })}\n`);
    // the report says which inputs are dynamic in model terms; the flag that fixes it is the CLI's to name
    const dynamic = report.inputs.filter((i) => !shapes.has(i.name) && !(i.shape ?? [null]).every((d) => typeof d === 'number' && d > 0));
    if (dynamic.length)
      process.stdout.write(`  hint: edgefit inspect ${argv.model} ${dynamic.map((i) => `--shape ${i.name}=<dims>`).join(' ')}\n`);
  },
};
