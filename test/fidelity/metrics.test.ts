// The fidelity metrics on hand-made tensors: every named metric scores identical outputs at its
// best and opposite (or zeroed) outputs at its worst, each aggregation (pooled, mean, min) gives
// the figure worked out by hand, and eval's, prune's and quantize's reports read the same table.
import t from 'tap';
import {
  METRICS,
  METRIC_NAMES,
  FidelityAccumulator,
  accuracy,
  argmaxAgreement,
  compareOne,
  compareSamples,
  cosine,
  maskIoU,
  meanKl,
  perOutputFidelity,
  singleOutputFidelity,
  summarizeFidelity,
  type MetricName,
  type OutputTensor,
  type Outputs,
} from '../../src/fidelity/index.js';
import type { NdArray } from '../../src/data/ndarray.js';

const tensor = (v: number[], dims: readonly number[] = [1, v.length]): OutputTensor => ({ dims, data: Float32Array.from(v) });
const one = (o: OutputTensor): Outputs => ({ y: o });
const fig = (m: MetricName, ref: OutputTensor[], got: OutputTensor[], over?: 'pooled' | 'mean' | 'min' | 'max') =>
  compareOne(ref.map(one), got.map(one), { metric: m, over });

t.test('each named metric: identical outputs score its best, opposite or zeroed outputs its worst', async (t) => {
  // class scores over 6 classes, two rows; a [1, 1, 2, 2] probability map for mask IoU
  const scores = tensor([0.05, 0.6, 0.1, 0.1, 0.1, 0.05, /**/ 0.7, 0.1, 0.05, 0.05, 0.05, 0.05], [2, 6]);
  // every row's argmax moved to the class the reference ranks last
  const flipped = tensor([0.6, 0.05, 0.1, 0.1, 0.1, 0.05, /**/ 0.05, 0.1, 0.05, 0.05, 0.05, 0.7], [2, 6]);
  const map = tensor([0.9, 0.8, 0.1, 0.0], [1, 1, 2, 2]);
  const worst: Record<MetricName, [OutputTensor, OutputTensor]> = {
    cosine: [
      scores,
      tensor(
        [...scores.data].map((x) => -x),
        scores.dims,
      ),
    ],
    snrDb: [scores, tensor(Array(12).fill(0), scores.dims)],
    maxAbsErr: [scores, tensor(Array(12).fill(Infinity), scores.dims)],
    relL2: [scores, tensor(Array(12).fill(Infinity), scores.dims)],
    sse: [scores, tensor(Array(12).fill(Infinity), scores.dims)],
    top1: [scores, flipped],
    top5: [tensor([1, 0, 0, 0, 0, 0], [1, 6]), tensor([0, 1, 1, 1, 1, 1], [1, 6])],
    kl: [tensor([1, 0, 0], [1, 3]), tensor([0, 1, 0], [1, 3])],
    maskIoU: [map, tensor([0, 0, 0.9, 0.9], map.dims)],
  };
  t.same(METRIC_NAMES.sort(), Object.keys(worst).sort(), 'every metric in the table is tested here');
  for (const m of METRIC_NAMES) {
    const [ref, bad] = worst[m];
    for (const over of ['pooled', 'mean', 'min'] as const) {
      const copy = tensor([...ref.data], ref.dims);
      t.equal(fig(m, [ref, ref], [copy, copy], over), METRICS[m].best, `${m} ${over}: identical -> ${METRICS[m].best}`);
    }
    const w = fig(m, [ref], [bad]);
    if (m === 'kl') t.ok(w > 20, `kl: disjoint distributions -> ${w} (log of the 1e-12 floor)`);
    else if (m === 'snrDb') t.equal(w, 0, 'snrDb: a zeroed output has noise equal to the signal, 0 dB');
    else t.equal(w, METRICS[m].worst, `${m}: opposite -> ${METRICS[m].worst}`);
  }
  t.equal(fig('snrDb', [tensor([0, 0])], [tensor([1, 0])]), -Infinity, 'snrDb: no signal, some noise -> -inf');
  t.equal(fig('cosine', [tensor([0, 0])], [tensor([0, 0])]), 1, 'cosine of two zero outputs is 1 (nothing differs)');
  t.equal(fig('cosine', [tensor([0, 0])], [tensor([0, 1])]), 0, 'cosine with one zero output is 0');
  const nan = tensor([NaN, 1]);
  t.equal(fig('cosine', [nan], [tensor([NaN, 1])]), 1, 'bit-identical outputs score the best even with NaN in them');
  // a NaN difference fails rather than hides (issue 20: NaN compares false with any floor)
  t.equal(fig('maxAbsErr', [nan], [tensor([1, 1])]), METRICS.maxAbsErr.worst, 'a NaN difference scores the worst, never NaN');
});

t.test('figures worked out by hand', async (t) => {
  const a = tensor([3, 4]);
  const b = tensor([4, 3]);
  t.equal(fig('cosine', [a], [b]), 24 / 25);
  t.equal(cosine(a.data, b.data), 24 / 25);
  t.ok(Math.abs(fig('snrDb', [a], [b]) - 10 * Math.log10(25 / 2)) < 1e-12, 'SNR = 10 log10(25 / 2)');
  t.equal(fig('maxAbsErr', [a], [b]), 1);
  t.ok(Math.abs(fig('relL2', [a], [b]) - Math.sqrt(2) / 5) < 1e-12);
  t.equal(fig('sse', [a], [b]), 2);
  const [m1, m2] = [tensor([0.2, 0.5, 0.9, 0.4], [1, 1, 2, 2]), tensor([0.4, 0.5, 0.1, 0.1], [1, 1, 2, 2])];
  t.equal(fig('maskIoU', [m1], [m2]), 1 / 4, 'above 0.3: {1,2,3} vs {0,1}: 1 of 4');
  t.equal(fig('maskIoU', [tensor([0, 0.1], [1, 1, 1, 2])], [tensor([0.2, 0], [1, 1, 1, 2])]), 1, 'both masks empty: IoU 1');
  t.equal(maskIoU(Float32Array.of(0.2, 0.5, 0.9, 0.4), Float32Array.of(0.4, 0.5, 0.1, 0.1)), 1 / 4, 'the same on flat arrays');
});

t.test('argmax agreement and KL (the quantize --fidelity-metric argmax figures)', async (t) => {
  const ref = Float32Array.of(0.1, 0.7, 0.2, /**/ 0.5, 0.3, 0.2, /**/ 0.2, 0.2, 0.6, /**/ 0.4, 0.4, 0.2);
  const got = Float32Array.of(0.1, 0.6, 0.3, /**/ 0.3, 0.5, 0.2, /**/ 0.2, 0.1, 0.7, /**/ 0.3, 0.5, 0.2);
  // rows 1 and 3 agree; row 2 flips 0 -> 1; row 4 is a tie in ref (first maximum, class 0) and 1 in got
  t.same(argmaxAgreement(ref, got, 3), { agree: 2, positions: 4 });
  t.same(argmaxAgreement(ref, got, 12), { agree: 0, positions: 1 }, 'one row of 12: argmax 1 vs 11');
  t.same(argmaxAgreement(ref, ref, 3), { agree: 4, positions: 4 });
  t.throws(() => argmaxAgreement(ref, got, 5), /rows of 5/);
  t.equal(fig('top1', [{ dims: [1, 4, 3], data: ref }], [{ dims: [1, 4, 3], data: got }]), 0.5);
  t.equal(meanKl(ref, ref, 3), 0, 'KL of a distribution with itself');
  const kl0 = 0.5 * Math.log(0.5 / 0.3) + 0.3 * Math.log(0.3 / 0.5);
  t.ok(Math.abs(meanKl(ref.subarray(3, 6), got.subarray(3, 6), 3) - kl0) < 1e-6, 'KL of one probability row, by hand');
  const row = (x: Float32Array): OutputTensor => ({ dims: [1, 3], data: x.subarray(3, 6) });
  t.ok(Math.abs(fig('kl', [row(ref)], [row(got)]) - kl0) < 1e-6, 'the table reads the same KL');
  // scores that are not distributions are softmaxed: adding a constant to a row changes nothing
  const logits = Float32Array.of(1, 2, 3);
  t.ok(meanKl(logits, Float32Array.of(11, 12, 13), 3) < 1e-9);
  t.ok(meanKl(logits, Float32Array.of(3, 2, 1), 3) > 0.5);
});

t.test('aggregations: pooled, mean and min over samples, worst output per sample', async (t) => {
  // sample 1 is almost zero and turned around; sample 2 is large and exact
  const ref = [tensor([1e-3, 0]), tensor([10, 10])];
  const got = [tensor([0, 1e-3]), tensor([10, 10])];
  t.equal(fig('cosine', ref, got, 'mean'), 0.5, 'mean of per-sample cosines: (0 + 1) / 2');
  t.equal(fig('cosine', ref, got, 'min'), 0);
  const pooled = fig('cosine', ref, got, 'pooled');
  t.ok(Math.abs(pooled - 200 / (200 + 1e-6)) < 1e-12, `pooled: the near-zero sample barely counts (${pooled})`);
  t.equal(fig('cosine', ref, got), pooled, "pooled is cosine's default");
  t.equal(fig('relL2', ref, got), Math.sqrt(2) / 2, "mean is relL2's default");
  t.equal(fig('maxAbsErr', ref, got), Math.fround(1e-3), 'maxAbsErr pools by max');

  // two outputs: per-sample figures take the worst output; pooled takes each output's pooled figure
  const s = (x: number[], z: number[]): Outputs => ({ x: tensor(x), z: tensor(z) });
  const refs = [s([1, 0], [1, 0]), s([1, 0], [1, 0])];
  const r = compareSamples(refs, [s([0, 1], [1, 0]), s([1, 0], [0, 1])], [{ metric: 'cosine', over: 'mean' }, { metric: 'cosine' }]);
  t.same(r.results[0]!.perSample, [0, 0], 'each sample has one turned output');
  t.equal(r.results[0]!.value, 0);
  t.same(
    r.results[1]!.perOutput.map((p) => [p.name, p.value]),
    [
      ['x', 0.5],
      ['z', 0.5],
    ],
  );
  t.equal(r.results[1]!.value, 0.5, 'pooled: the worst output');

  // streaming one sample at a time gives the same figures
  const acc = new FidelityAccumulator([{ metric: 'cosine', over: 'mean' }]);
  acc.add({ y: ref[0]! }, { y: got[0]! });
  acc.add({ y: ref[1]! }, { y: got[1]! });
  t.equal(acc.result().results[0]!.value, 0.5);
  t.equal(compareOne([], [], { metric: 'cosine' }), 1, 'no samples: nothing differs');
  t.throws(() => compareSamples([one(a2())], [{ z: a2() }], [{ metric: 'cosine' }]), {
    code: 'EVAL',
    message: /output 'y' missing from the model's results/,
  });
  const wide = [one(tensor([1, 2, 3]))];
  t.throws(() => compareSamples([one(a2())], wide, [{ metric: 'cosine' }]), {
    code: 'EVAL',
    message: /has shape 1x3 but the reference's is 1x2/,
  });
  t.throws(() => compareSamples([one(a2())], [], [{ metric: 'cosine' }]), /0 vs 1 samples/);
  t.throws(() => compareSamples([one(a2())], [one(a2())], [{ metric: 'top1', outputs: ['z'] }]), {
    code: 'EVAL',
    message: /output 'z' missing/,
  });
});

function a2(): OutputTensor {
  return tensor([1, 2]);
}

t.test("eval's report: per output, headline naming its metric, accuracy", async (t) => {
  const nd = (v: number[], shape = [1, v.length]): NdArray => ({ dtype: 'float32', shape, data: Float32Array.from(v) });
  const ref = [{ y: nd([0, 1, 2, 3, 4, 5, 6]) }, { y: nd([6, 5, 4, 3, 2, 1, 0]) }];
  const cand = [{ y: nd([0, 1, 2, 3, 4, 6, 5]) }, { y: nd([6, 5, 4, 3, 2, 1, 0]) }];
  const [f] = perOutputFidelity(ref, cand, ['y']);
  t.equal(f!.top1Agreement, 0.5, 'one of two argmaxes moved');
  t.equal(f!.top5Agreement, 1, "reference's top-1 still in the top 5");
  t.equal(f!.maxAbsErr, 1);
  t.ok(Math.abs(f!.snrDb - 10 * Math.log10(182 / 2)) < 1e-9, 'SNR = 10 log10(sum ref^2 / sum err^2)');
  t.ok(Math.abs(f!.cosine - 181 / 182) < 1e-12, 'cosine pooled over both samples: (90 + 91) / (91 + 91)');
  const s = summarizeFidelity([f!], 'auto', 2, true);
  t.same([s.metric, s.value, s.synthetic], ['top1', 0.5, true]);
  t.equal(summarizeFidelity([f!], 'cosine', 2, false).value, f!.cosine);
  const det = perOutputFidelity([{ m: nd([0.1, 0.2, 0.3], [1, 1, 3, 1]) }], [{ m: nd([0.1, 0.2, 0.3], [1, 1, 3, 1]) }], ['m']);
  t.throws(() => summarizeFidelity(det, 'top1', 1, false), /top1 needs a classifier-like output/);
  t.equal(summarizeFidelity(det, 'auto', 1, false).metric, 'cosine', 'maps are compared by cosine');
  t.same([det[0]!.cosine, det[0]!.snrDb, det[0]!.maxAbsErr], [1, Infinity, 0], 'identical: best of each');
  const few = perOutputFidelity([{ y: nd([1, 2, 3]) }], [{ y: nd([1, 3, 2]) }], ['y']);
  t.equal(few[0]!.top1Agreement, 0);
  t.equal(few[0]!.top5Agreement, undefined, 'top-5 only with more than 5 classes');
  const half: NdArray = { dtype: 'float16', shape: [1, 2], data: Uint16Array.of(0x3c00, 0x4000) };
  t.equal(perOutputFidelity([{ y: half }], [{ y: nd([1, 2]) }], ['y'])[0]!.maxAbsErr, 0, 'float16 read as its values');
  const acc = accuracy([{ y: nd([0, 3, 1]) }, { y: nd([2, 1, 0]) }, { y: nd([0, 0, 5]) }], [1, 0, 0], ['y']);
  t.same(acc, { value: 2 / 3, correct: 2, total: 3, output: 'y' });
  t.throws(() => accuracy([{ m: nd([1], [1, 1, 1, 1]) }], [0], ['m']), /no classifier-like output/);
});

t.test("prune's figures of one output: mean and pooled cosine, relative L2, top-1 for scores, mask IoU for maps", async (t) => {
  const ref = [tensor([0.1, 0.9, 0.4, 0.2], [1, 1, 2, 2]), tensor([0.5, 0.1, 0.1, 0.1], [1, 1, 2, 2])];
  const got = [tensor([0.1, 0.9, 0.2, 0.4], [1, 1, 2, 2]), tensor([0.5, 0.1, 0.1, 0.1], [1, 1, 2, 2])];
  const f = singleOutputFidelity(ref, got);
  t.equal(f.samples, 2);
  t.equal(f.top1Agreement, null, 'a map has no classes');
  t.equal(f.maskIoU, 2 / 4, 'above 0.3, pooled: {1,2} vs {1,3} (1 of 3), then {0} vs {0} (1 of 1)');
  t.equal(f.cosine, (cosine(ref[0]!.data, got[0]!.data) + 1) / 2);
  t.ok(Math.abs(f.relL2 - Math.sqrt(0.08 / 1.02) / 2) < 1e-6, 'mean of sqrt(sum d^2 / sum ref^2)');
  t.ok(Math.abs(f.pooledCosine - (0.98 + 0.28) / (1.02 + 0.28)) < 1e-6, 'pooled: sums over both samples');
  const c = singleOutputFidelity([tensor([1, 2, 3, /**/ 3, 2, 1], [2, 3])], [tensor([1, 3, 2, /**/ 3, 2, 1], [2, 3])]);
  t.equal(c.top1Agreement, 0.5);
  t.equal(c.maskIoU, null);
});
