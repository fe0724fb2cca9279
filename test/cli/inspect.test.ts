import t from 'tap';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, OCR_MODELS } from '../../devkit/paths.js';
import { testDir } from '../helpers/tmp.js';

t.test('inspect --json on PP-OCRv4 det gives the documented fields', async (t) => {
  const r = await runCli(['inspect', OCR_MODELS.det.file, '--shape', 'x=1x3x640x640', '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  for (const k of ['params', 'macs', 'weightBytes', 'peakActivationBytes', 'nodes', 'opsets', 'inputs', 'outputs', 'layers'])
    t.ok(k in j, k);
  t.equal(j.params, 1_171_841);
  t.same(j.outputs[0].shape, [1, 1, 640, 640]);
  t.ok(
    j.layers.every(
      (l: { name: string; op: string; params: number; macs: number }) => typeof l.op === 'string' && typeof l.params === 'number',
    ),
  );
  const sum = j.layers.reduce((a: number, l: { macs: number }) => a + l.macs, 0);
  t.equal(sum, j.macs, 'layer MACs add up to the total');
});

t.test('inspect prints a readable table', async (t) => {
  const r = await runCli(['inspect', OCR_MODELS.cls.file, '--shape', 'x=1x3x48x192']);
  t.equal(r.code, 0);
  t.match(r.stdout, /layer\s+op\s+output\s+params\s+MACs\s+share/);
  t.match(r.stdout, /params 133\.7 k \(133664\)/);
});

t.test('a dynamic input: the report says so in model terms, and the CLI names the flag that fixes it', async (t) => {
  const r = await runCli(['inspect', OCR_MODELS.cls.file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /note: input 'x' has dynamic dims/);
  t.match(r.stdout, /hint: edgefit inspect \S+ --shape x=<dims>/);
  const given = await runCli(['inspect', OCR_MODELS.cls.file, '--shape', 'x=1x3x48x192']);
  t.notMatch(given.stdout, /hint:/, 'no hint once the shape is given');
});

t.test('bad input: one line on stderr, exit 2 for usage and 1 for model errors, stack only with --verbose', async (t) => {
  const dir = testDir('edgefit-cli-');
  const trunc = join(dir, 'trunc.onnx');
  writeFileSync(trunc, readFileSync(OCR_MODELS.cls.file).subarray(0, 4000));
  const text = join(dir, 'text.onnx');
  writeFileSync(text, 'hello, I am not a model\n');
  const cases: [string[], number, RegExp][] = [
    [['inspect', join(dir, 'missing.onnx')], 1, /not found/],
    [['inspect', text], 1, /not an ONNX model/],
    [['inspect', trunc], 1, /not a readable ONNX model/],
    [['inspect', OCR_MODELS.cls.file, '--shape', 'y=1x3'], 2, /not a model input/],
    [['inspect', OCR_MODELS.cls.file, '--shape', 'x=banana'], 2, /bad --shape/],
    [['inspect'], 2, /Not enough non-option arguments/],
    // yargs' detail lines (which argument, what was given, the choices) joined into the one line
    [
      ['prune', OCR_MODELS.cls.file, '-o', join(dir, 'p.onnx'), '--importance', 'bogus'],
      2,
      /^edgefit: Invalid values: Argument: importance, Given: "bogus", Choices: /,
    ],
  ];
  for (const [args, code, msg] of cases) {
    const r = await runCli(args);
    t.equal(r.code, code, args.join(' '));
    t.match(r.stderr, msg);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const v = await runCli(['inspect', trunc, '--verbose']);
  t.match(v.stderr, /\n\s+at /, '--verbose shows the stack');
});

t.test('--help lists the commands', async (t) => {
  const r = await runCli(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /inspect <model>/);
});
