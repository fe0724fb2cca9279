// Zero or negative input dims are refused wherever shapes come in (issue 20: `fit --shape
// x=0x3x640x640 --latency-ms 50` timed an empty tensor and claimed a p95 of 0.5 ms): the one
// validator in ir/, the CLI's --shape parser, shape inference, the data loader and the agent config.
import t from 'tap';
import { checkDims, checkShapes } from '../../src/ir/dims.js';
import { parseShapes, cliMessage } from '../../src/cli/output.js';
import { inferShapes } from '../../src/ir/shapes.js';
import { resolveShape } from '../../src/data/inputs.js';
import { loadModel } from '../../src/onnx/index.js';
import { loadAgentConfig } from '../../src/config/agent.js';
import { configMessage } from '../../src/config/remedy.js';
import { OCR_MODELS } from '../../devkit/paths.js';

t.test('checkDims: whole numbers of at least 1, else a usage error naming the input and the dim', async (t) => {
  t.same(checkDims('x', [1, 3, 640, 640]), [1, 3, 640, 640]);
  for (const bad of [[0, 3, 640, 640], [1, -3, 640, 640], [1, 3, 0.5, 640], [1, 3, NaN, 640], [], [1, 2 ** 31]])
    t.throws(() => checkDims('x', bad), { code: 'USAGE' }, `refuses ${bad.join('x')}`);
  const e = t.throws(() => checkDims('x', [0, 3, 640, 640]));
  t.match(cliMessage(e), /input 'x' \(0x3x640x640\) has dim 0.*--shape x=/);
  t.match(configMessage(e), /model\.shapes\.x/);
  t.throws(() => checkShapes({ x: [1, 3], y: [1, 0] }), { message: /input 'y'/ });
  t.throws(() => checkShapes(new Map([['x', [-1]]])), { code: 'USAGE' });
});

t.test('the CLI --shape parser refuses zero and negative dims with the same one line', async (t) => {
  t.same([...parseShapes(['x=1x3x48x192'])], [['x', [1, 3, 48, 192]]]);
  for (const s of ['x=0x3x640x640', 'x=1x3x-640x640', 'x=-1'])
    t.throws(() => parseShapes([s]), { code: 'USAGE', message: /every dim must be a whole number of at least 1/ }, s);
  t.throws(() => parseShapes(['x=1x3xax640']), { code: 'USAGE', message: /bad --shape/ });
});

t.test('library entry points refuse them too: shape inference and the data loader', async (t) => {
  const m = loadModel(OCR_MODELS.det.file);
  t.ok(inferShapes(m, { shapes: new Map([['x', [1, 3, 640, 640]]]) }).types.size > 0);
  t.throws(() => inferShapes(m, { shapes: new Map([['x', [0, 3, 640, 640]]]) }), { code: 'USAGE', message: /dim 0/ });
  t.throws(() => resolveShape({ name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] }, new Map([['x', [1, 3, 0, 640]]])), {
    code: 'USAGE',
  });
});

t.test('the agent config refuses zero dims in model.shapes', async (t) => {
  t.same(loadAgentConfig({ flags: { model: { shapes: { x: [1, 3, 640, 640] } } } }).model.shapes, { x: [1, 3, 640, 640] });
  t.throws(() => loadAgentConfig({ flags: { model: { shapes: { x: [0, 3, 640, 640] } } } }), { code: 'CONFIG', message: /model\.shapes/ });
  t.throws(() => loadAgentConfig({ flags: { model: { shapes: { x: [1, -3, 640, 640] } } } }), { code: 'CONFIG' });
});
