// Reading the latency tables (issue 17) on hand-made tables: interpolation between measured
// widths, the two sides multiplied, depthwise layers' one width, predictions anchored to the
// model's measured time, and predictModelMs reading a pruned copy's widths by node name (a
// removed node saves all of its time). No timing here: the figures are made up.
import t from 'tap';
import { ModelBuilder } from '../../devkit/builder.js';
import {
  calibratedMs,
  layerMs,
  predictMs,
  predictModelMs,
  rawForCalibratedMs,
  type LatencyTables,
  type LayerTable,
} from '../../src/analyze/latency/index.js';
import { Tensor } from '../../src/ir/tensor.js';

const conv: LayerTable = {
  node: 'c1',
  op: 'Conv',
  inChannels: 32,
  outChannels: 64,
  depthwise: false,
  inWidths: [8, 16, 32],
  inMs: [1, 2, 4],
  outWidths: [16, 32, 64],
  outMs: [1, 2, 4],
  fullMs: 4,
};
const dw: LayerTable = {
  node: 'd1',
  op: 'Conv',
  inChannels: 64,
  outChannels: 64,
  depthwise: true,
  inWidths: [],
  inMs: [],
  outWidths: [16, 32, 64],
  outMs: [0.5, 0.75, 1],
  fullMs: 1,
};
const tables = (layers: LayerTable[], modelMs: number): LatencyTables => ({
  version: 1,
  key: { model: 'x', hardware: 'y', threads: 2, shapes: {} },
  block: 8,
  blockSource: 'cpu',
  blockEvidence: [],
  layers,
  modelMs,
  buildMs: 0,
});

t.test('layerMs: full widths give the full time, sides interpolate and multiply', async (t) => {
  t.equal(layerMs(conv, 32, 64), 4);
  t.equal(layerMs(conv, 16, 64), 2, 'a measured input width');
  t.equal(layerMs(conv, 24, 64), 3, 'halfway between 16 and 32');
  t.equal(layerMs(conv, 32, 48), 3, 'halfway on the output side');
  t.equal(layerMs(conv, 16, 32), 1, 'both halved: 2 * 2 / 4');
  t.equal(layerMs(conv, 4, 64), 0.5, 'below the first point: proportional toward 0');
  t.equal(layerMs(conv, 0, 0), 0, 'a removed layer costs nothing');
});

t.test('layerMs: the interaction blends the product of the sides with the sum of their savings', async (t) => {
  // both halved: product 2 * 2 / 4 = 1; additive 4 - 2 - 2 = 0 saved twice -> 0
  t.equal(layerMs({ ...conv, interaction: 1 }, 16, 32), 1);
  t.equal(layerMs({ ...conv, interaction: 0 }, 16, 32), 0);
  t.equal(layerMs({ ...conv, interaction: 0.5 }, 16, 32), 0.5);
  t.equal(layerMs({ ...conv, interaction: 0 }, 16, 64), 2, 'one side alone is the measured curve whatever the interaction');
  t.equal(layerMs({ ...conv, interaction: 0 }, 8, 16), 0, 'never below zero');
  t.equal(layerMs({ ...conv, interaction: 0.5 }, 32, 64), 4);
});

t.test('layerMs: a depthwise layer has one width', async (t) => {
  t.equal(layerMs(dw, 64, 64), 1);
  t.equal(layerMs(dw, 32, 32), 0.75);
  t.equal(layerMs(dw, 48, 48), 0.875);
  t.equal(layerMs(dw, 64, 32), 0.75, 'the narrower side decides');
});

t.test('layerMs: a grouped Conv has one width by kept whole groups; narrower groups save nothing', async (t) => {
  const gc: LayerTable = { ...dw, node: 'g1', depthwise: false, groupWidth: 16, outWidths: [16, 32, 48, 64], outMs: [0.4, 0.6, 0.8, 1] };
  t.equal(layerMs(gc, 64, 64, 4), 1);
  t.equal(layerMs(gc, 32, 32, 2), 0.6, 'two of four groups: the measured point');
  t.equal(layerMs(gc, 32, 32), 0.6, 'without a group count: read as whole groups');
  t.equal(layerMs(gc, 32, 32, 4), 1, 'four groups of 8: measured no faster than four of 16 (bench-grouped)');
  const pm = predictMs(tables([gc], 5), new Map([['g1', { cin: 48, cout: 48, groups: 3 }]]));
  t.ok(Math.abs(pm - 4.8) < 1e-9, `predictMs passes the group count (${pm})`);
});

t.test('predictMs: the model time less the savings; unnamed layers keep their full time', async (t) => {
  const tb = tables([conv, dw], 20);
  t.equal(predictMs(tb, new Map()), 20);
  t.equal(predictMs(tb, new Map([['c1', { cin: 16, cout: 32 }]])), 17);
  t.equal(
    predictMs(
      tb,
      new Map([
        ['c1', { cin: 16, cout: 32 }],
        ['d1', { cin: 32, cout: 32 }],
      ]),
    ),
    16.75,
  );
});

t.test('predictModelMs reads widths from the weights by node name; a node gone saves all of its time', async (t) => {
  const b = new ModelBuilder({ seed: 3 });
  const x = b.input('x', [1, 32, 8, 8]);
  const y = b.conv(x, 64, { k: 3 });
  b.output(y);
  const m = b.build();
  const node = m.graph.nodes.find((n) => n.opType === 'Conv')!;
  node.name = 'c1';
  const tb = tables([conv, dw], 20);
  // d1 is not in this model: predicted as removed (1 ms saved); c1 at full widths saves nothing
  t.equal(predictModelMs(tb, m), 19);
  // narrow c1's weight as pruning would: 16 of 32 inputs, 32 of 64 outputs
  m.graph.setInitializer(Tensor.fromFloat32(node.inputs[1]!, [32, 16, 3, 3], new Float32Array(32 * 16 * 9)));
  t.equal(predictModelMs(tb, m), 16);
});

t.test('whole-model probes map predictions: identity without them, monotone through them, invertible', async (t) => {
  const base: LatencyTables = {
    version: 1,
    key: { model: 'm', hardware: 'h', threads: 2, shapes: {} },
    block: 16,
    blockSource: 'cpu',
    blockEvidence: [],
    layers: [],
    modelMs: 10,
    buildMs: 0,
  };
  t.equal(calibratedMs(base, 6), 6, 'no probes: the raw prediction');
  t.equal(rawForCalibratedMs(base, 6), 6);
  // probes: predicted 0.7 measured 0.6; predicted 0.4 measured 0.25 (whole models gain more)
  const probed = {
    ...base,
    probes: [
      { predicted: 0.7, measured: 0.6 },
      { predicted: 0.4, measured: 0.25 },
    ],
  };
  t.equal(calibratedMs(probed, 10), 10, 'the uncut model is itself');
  t.ok(Math.abs(calibratedMs(probed, 7) - 6) < 1e-9, 'a probe point maps to its measurement');
  t.ok(Math.abs(calibratedMs(probed, 5.5) - 4.25) < 1e-9, 'between points: linear');
  t.ok(Math.abs(calibratedMs(probed, 2) - 1.25) < 1e-9, 'below the deepest probe: proportional toward 0');
  for (const ms of [9, 6, 4, 1.5]) t.ok(Math.abs(calibratedMs(probed, rawForCalibratedMs(probed, ms)) - ms) < 1e-9, `round trip at ${ms}`);
  // noise: a deeper cut measured slower than a lighter one is pooled, so the map never decreases
  const noisy = {
    ...base,
    probes: [
      { predicted: 0.5, measured: 0.7 },
      { predicted: 0.8, measured: 0.6 },
    ],
  };
  const ys = [2, 4, 5, 6, 8, 9, 10].map((ms) => calibratedMs(noisy, ms));
  t.ok(
    ys.every((y, i) => i === 0 || y >= ys[i - 1]! - 1e-12),
    `monotone: ${ys.map((y) => y.toFixed(2)).join(' ')}`,
  );
  t.ok(Math.abs(calibratedMs(noisy, 5) - 6.5) < 1e-9, 'the violating pair pooled to its mean');
});
