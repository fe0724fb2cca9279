// The latency tables' builder (issue 17) on small real models: weight layers and their units
// (the layer plus its constant elementwise tail, a decomposed HardSwish included) run in
// onnxruntime at narrowed widths with the right output shapes; built tables have ascending
// widths ending at the full width; identical layers are measured once; a second build comes
// from the cache without measuring, a torn cache file is a miss; the block falls back to the
// CPU features. Times are noisy on a shared box: no assertion on a figure.
import t from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, GROUPED_FIXTURES, ModelBuilder } from '../../devkit/builder.js';
import { OCR_MODELS } from '../../devkit/paths.js';
import {
  blockFromCpu,
  blockFromEvidence,
  buildLatencyTables,
  buildUnit,
  cpuFacts,
  weightLayers,
  widthsFor,
} from '../../src/analyze/latency/index.js';
import { annotateShapes } from '../../src/ir/shapes.js';
import type { Model } from '../../src/ir/model.js';
import { loadModel } from '../../src/onnx/index.js';
import { normalize } from '../../src/passes/normalize.js';
import { floatTensor, openSession } from '../../src/runtime/runner.js';

const cache = mkdtempSync(join(tmpdir(), 'edgefit-lt-test-'));
t.teardown(() => rmSync(cache, { recursive: true, force: true }));

async function outputDims(m: Model, inputs: ReadonlyArray<{ name: string; shape: number[] }>): Promise<number[][]> {
  const s = await openSession(m, { threads: 1 });
  try {
    const feeds = Object.fromEntries(
      inputs.map((i) => [i.name, floatTensor(new Float32Array(i.shape.reduce((a, b) => a * b, 1)).fill(0.1), i.shape)]),
    );
    const out = await s.run(feeds);
    return s.outputNames.map((o) => out[o]!.dims.map(Number));
  } finally {
    await s.release();
  }
}

/** x -> [conv 3x3 64->64 -> relu] x3: the second and third layers are identical (64: two widths or more at any block). */
function chain(): Model {
  const b = new ModelBuilder({ seed: 11 });
  let x = b.input('x', [1, 64, 8, 8]);
  for (let i = 0; i < 3; i++) x = b.relu(b.conv(x, 64, { k: 3 }));
  b.output(x);
  return b.build();
}

t.test('widthsFor: block multiples up to the full width, the full width last', async (t) => {
  t.same(widthsFor(32, 8), [8, 16, 24, 32]);
  t.same(widthsFor(30, 8), [8, 16, 24, 30]);
  t.same(widthsFor(12, 16), [4, 8, 12], 'narrower than two blocks: quarter blocks');
  t.same(widthsFor(3, 8), [2, 3]);
  const wide = widthsFor(512, 16);
  t.ok(wide.length >= 6 && wide.length <= 9, `${wide.length} points on a wide layer`);
  t.equal(wide.at(-1), 512);
  t.ok(wide.every((w) => w % 16 === 0));
});

t.test('units of the ppocr cls model run at narrowed widths with the right output shapes', async (t) => {
  const m = normalize(loadModel(OCR_MODELS.cls.file));
  annotateShapes(m, { shapes: new Map([['x', [...OCR_MODELS.cls.shape]]]) });
  const layers = weightLayers(m);
  t.ok(layers.length >= 50, `${layers.length} weight layers`);
  t.notOk(layers[0]!.inPrunable, 'the first conv reads the image: its input side is fixed');
  const dw = layers.find((l) => l.depthwise && l.outChannels >= 16)!;
  const plain = layers.find((l) => l.op === 'Conv' && l.group === 1 && l.inChannels >= 16 && l.outChannels >= 16)!;
  const fc = layers.find((l) => l.op === 'MatMul' || l.op === 'Gemm');
  for (const [l, cin, cout] of [
    [plain, 8, plain.outChannels],
    [plain, plain.inChannels, 8],
    [dw, 8, 8],
    ...(fc ? [[fc, 16, fc.outChannels] as const] : []),
  ] as const) {
    const u = buildUnit(m, l, cin, cout);
    const dims = await outputDims(u.model, u.inputs);
    const chAxis = l.op === 'Conv' ? 1 : dims[0]!.length - 1;
    t.equal(dims[0]![chAxis], cout, `${l.node.name} at ${cin}->${cout}: ${dims[0]!.join('x')}`);
    t.equal(u.inShape[l.inAxis], l.depthwise ? cout : cin);
  }
  t.ok(
    layers.some((l) => l.tail.length > 0),
    'units carry the ops after their layer',
  );
});

t.test("a decomposed HardSwish stays in its layer's unit, its constants narrowed with the output", async (t) => {
  const b = new ModelBuilder({ seed: 5 });
  const x = b.input('x', [1, 8, 10, 10]);
  const y = b.hardSwishExpanded(b.bn(b.conv(x, 24, { k: 3 })));
  b.output(b.conv(y, 8, { k: 1 }));
  const m = b.build();
  annotateShapes(m);
  const [first] = weightLayers(m);
  t.same(first!.tail.map((n) => n.opType).sort(), ['Add', 'BatchNormalization', 'Clip', 'Div', 'Mul'], 'BN and the whole HardSwish');
  const u = buildUnit(m, first!, 8, 16);
  t.same(u.model.graph.outputs.length, 1, 'one value leaves the unit');
  t.same((await outputDims(u.model, u.inputs))[0], [1, 16, 10, 10]);
});

t.test('tables: structure, one measurement per distinct configuration, cache hit and torn-file miss', async (t) => {
  const m = chain();
  let calls = 0;
  const tb = await buildLatencyTables(m, { shapes: new Map(), threads: 1, cacheDir: cache, onProgress: () => calls++ });
  t.equal(tb.version, 1);
  t.equal(tb.layers.length, 3);
  t.ok(tb.modelMs > 0 && tb.buildMs > 0);
  const sum = tb.layers.reduce((a, l) => a + l.fullMs, 0);
  t.ok(sum <= 0.9 * tb.modelMs + 1e-9, `units ${sum} ms hold at most 90 % of the model's ${tb.modelMs} ms`);
  t.ok([4, 8, 16, 32].includes(tb.block));
  t.equal(tb.blockEvidence.length, 4, 'the staircase evidence of both passes is kept');
  t.match(tb.key, { threads: 1, shapes: { x: [1, 64, 8, 8] } });
  t.match(tb.key.model, /^[0-9a-f]{64}$/);
  for (const l of tb.layers) {
    for (const [ws, ms, full] of [
      [l.inWidths, l.inMs, l.inChannels],
      [l.outWidths, l.outMs, l.outChannels],
    ] as const) {
      t.equal(ws.length, ms.length);
      if (!ws.length) continue;
      t.equal(ws.at(-1), full, `${l.node}: the full width last`);
      t.ok(
        ws.every((w, i) => i === 0 || w > ws[i - 1]!),
        'ascending',
      );
      t.equal(ms.at(-1), l.fullMs);
    }
  }
  t.same(tb.layers[0]!.inWidths, [], 'the graph input side is not measured');
  t.equal(tb.layers[0]!.interaction, undefined, 'one side only: no interaction to measure');
  const k = tb.layers[1]!.interaction!;
  t.ok(k >= 0 && k <= 1.5, `interaction ${k} measured with both sides narrowed`);
  t.ok(tb.layers[1]!.inWidths.length > 1, `input widths ${tb.layers[1]!.inWidths.join(' ')}`);
  // layers 2 and 3 are the same configuration: measured once, so their figures are the same numbers
  t.same(tb.layers[2]!.inMs, tb.layers[1]!.inMs);
  t.same(tb.layers[2]!.outMs, tb.layers[1]!.outMs);
  // each layer: its widths on both sides (the full width counted once), plus one unit with both narrowed
  const perLayer = tb.layers.map((l) => l.inWidths.length + l.outWidths.length - (l.inWidths.length ? 1 : 0) + (l.inWidths.length ? 1 : 0));
  t.ok(calls - 2 < perLayer.reduce((a, b) => a + b, 0), `${calls - 2} unit measurements for ${perLayer.join('+')} figures`);
  t.equal(
    calls - 2,
    perLayer[0]! + perLayer[1]! - tb.layers[0]!.outWidths.length,
    `layer 2 and 3 share; layer 1 shares its output side (block ${tb.block})`,
  );

  let again = 0;
  const hit = await buildLatencyTables(m, { shapes: new Map(), threads: 1, cacheDir: cache, onProgress: () => again++ });
  t.equal(again, 0, 'the second build measures nothing');
  t.same(hit, tb);

  const file = readdirSync(cache).find((f) => !f.startsWith('block-') && f.endsWith('.json'))!;
  writeFileSync(join(cache, file), '{"version":1,"key":');
  let torn = 0;
  await buildLatencyTables(m, { shapes: new Map(), threads: 1, cacheDir: cache, onProgress: () => torn++ });
  t.ok(torn > 0, 'a torn cache file is a miss');

  let other = 0;
  await buildLatencyTables(m, { shapes: new Map(), threads: 2, cacheDir: cache, onProgress: () => other++ });
  t.ok(other > 0, 'another thread count is another key');
});

t.test('a grouped Conv (RegNet, ResNeXt) is measured by kept whole groups, and its tables build', async (t) => {
  const m = GROUPED_FIXTURES.resnext();
  annotateShapes(m);
  const grouped = weightLayers(m).filter((l) => l.group === 4);
  t.equal(grouped.length, 2);
  for (const l of grouped) {
    t.same([l.groupWidth, l.outPrunable, l.inPrunable], [16, true, false], `${l.node.name}: 16 per group, narrowed on one side`);
    // the full unit and one with 2 of its 4 groups: the weight holds one group's 16 input channels
    for (const cout of [64, 32]) {
      const u = buildUnit(m, l, l.inChannels, cout);
      t.same(u.model.graph.initializer('__w')!.dims, [cout, 16, 3, 3], `${l.node.name} at ${cout}: weight [${cout}, 16, 3, 3]`);
      t.equal(u.inShape[1], cout, 'its input follows the kept groups');
      t.same((await outputDims(u.model, u.inputs))[0]!.slice(0, 2), [1, cout], 'and it runs');
    }
  }
  const tb = await buildLatencyTables(m, { shapes: new Map(), threads: 1, cacheDir: cache });
  const gt = tb.layers.filter((l) => l.groupWidth === 16);
  t.equal(gt.length, 2, 'both grouped layers have tables');
  for (const l of gt) {
    t.same(l.outWidths, [16, 32, 48, 64], 'one width per kept group count');
    t.same(l.inWidths, [], 'the input side moves with the groups');
  }
});

t.test('the whole-model anchor and the layers of a fixture with Gemm', async (t) => {
  const m = FIXTURES.mlp();
  const tb = await buildLatencyTables(m, { shapes: new Map(), threads: 1, cacheDir: cache });
  t.ok(tb.layers.length >= 2, `${tb.layers.map((l) => l.op).join(', ')}`);
  t.ok(tb.layers.some((l) => l.outWidths.length > 1));
});

t.test('block: the staircase decides, the CPU features when it is unclear', async (t) => {
  const stairs = (b: number) => {
    const widths = Array.from({ length: 33 }, (_, i) => 32 + i);
    return { layer: 'synthetic', widths, ms: widths.map((w) => (w % b === 0 ? w / 64 : 2 + w / 64)) };
  };
  t.equal(blockFromEvidence([stairs(8)]), 8);
  t.equal(blockFromEvidence([stairs(16)]), 16);
  // NCHWc on AVX-512: multiples of 4 stay on the fast path, padded to 16 channels
  const widths = Array.from({ length: 33 }, (_, i) => 32 + i);
  const padded = { layer: 'padded', widths, ms: widths.map((w) => (w % 4 === 0 ? Math.ceil(w / 16) / 4 : 2 + w / 64)) };
  t.equal(blockFromEvidence([padded]), 16, 'aligned to 4, padded to 16');
  const linear = Array.from({ length: 33 }, (_, i) => 32 + i);
  t.equal(blockFromEvidence([{ layer: 'flat', widths: linear, ms: linear.map((w) => w / 64) }]), null);
  const x86 = cpuFacts('processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu sse avx avx2 fma avx512f avx512bw\n');
  t.equal(x86.model, 'Xeon');
  t.same(x86.flags, ['avx', 'avx2', 'fma', 'avx512f', 'avx512bw']);
  t.equal(blockFromCpu(x86), 16);
  t.equal(blockFromCpu(cpuFacts('processor\t: 0\nflags\t: sse avx avx2 fma\n')), 8);
  t.equal(blockFromCpu(cpuFacts('processor\t: 0\nFeatures\t: fp asimd evtstrm\n')), 4);
});
