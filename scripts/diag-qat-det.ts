// Where PP-OCRv4 det's static int8 error sits, for QAT (issue 18): static int8 from the bundled
// calibration set (per --methods), judged on the judge set (map cosine, box F1) all int8 and with
// every activation float (weights only); then, optionally,
//   --rank N   each quantized activation alone int8 (weights int8, every other activation float),
//              its 1 - cosine on the N worst judge images: the costliest tensors;
//   --keep a,b the named activations left float (first 1, 3, 5, all): fidelity and latency
//              interleaved against all int8 and float (what a keep-float choice would cost);
//   --sweep a,b each named activation's step scaled by 1 .. 1/32 with the rest int8 (does a
//              smaller range, as a learned or percentile scale would pick, fix it?).
//   node dist/scripts/diag-qat-det.js [--methods minmax,percentile,mse] [--rank 4] [--keep ...] [--sweep ...]
import { loadModel } from '../src/onnx/index.js';
import { loadInputSet } from '../src/data/inputs.js';
import { modelInputs, openSession, toFeeds } from '../src/runtime/runner.js';
import { cosine } from '../src/fidelity/index.js';
import { openQuantizer, type CalibMethod } from '../src/passes/quantize/index.js';
import { OCR_FIT_SETS, OCR_MODELS } from '../devkit/paths.js';
import { quantizedActivations, withFloatActivations } from './qdq-strip.js';
import { parseModel, serializeModel } from '../src/onnx/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { interleavedMedians } from './interleave.js';
import { firstOutputs, judgeDetMaps, type FirstOutput } from '../devkit/outputs.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string): string => (argv.includes(k) ? argv[argv.indexOf(k) + 1]! : d);
const methods = opt('--methods', 'minmax').split(',') as CalibMethod[];
const rank = Number(opt('--rank', '0'));
function judge(ref: FirstOutput[], got: FirstOutput[]): string {
  const j = judgeDetMaps(ref, got);
  return `cos mean ${j.meanCos.toFixed(4)} min ${Math.min(...j.cos).toFixed(4)} F1 ${j.figures.boxF1!.toFixed(4)}`;
}
const m0 = loadModel(OCR_MODELS.det.file);
const inputs = modelInputs(m0);
const calib = loadInputSet(OCR_FIT_SETS.det.calibrate, inputs).samples;
const judgeSet = loadInputSet(OCR_FIT_SETS.det.judge, inputs).samples;
let ref: FirstOutput[] | undefined;
for (const method of methods) {
  const t0 = Date.now();
  const q = await openQuantizer(loadModel(OCR_MODELS.det.file), { mode: 'static', method, data: calib.map(toFeeds), threads: 2 });
  const built = q.build(q.defaultPlan);
  ref ??= await firstOutputs(q.floatBytes, judgeSet);
  const bytes = built.bytes;
  const acts = quantizedActivations(bytes);
  console.log(
    `${method}: built in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${acts.length} acts, reduceRange ${q.defaultPlan.reduceRange}`,
  );
  console.log(`  all int8: ${judge(ref, await firstOutputs(bytes, judgeSet))}`);
  console.log(`  weights only: ${judge(ref, await firstOutputs(withFloatActivations(bytes, acts), judgeSet))}`);
  const keep = opt('--keep', '');
  if (keep) {
    const top = keep.split(',');
    const cands: [string, Uint8Array][] = [['all int8', bytes]];
    for (const k of [1, 3, 5, top.length])
      if (k <= top.length) cands.push([`top ${k} float`, withFloatActivations(bytes, top.slice(0, k))]);
    for (const [name, b] of cands) console.log(`  ${name}: ${judge(ref, await firstOutputs(b, judgeSet))}`);
    const ss = [q.floatBytes, ...cands.map(([, b]) => b)];
    const sessions = await Promise.all(ss.map((b) => openSession(b, { level: 'all', threads: 2, spinning: false })));
    const ms = await interleavedMedians(sessions, toFeeds(judgeSet[0]!), 15);
    console.log(
      `  latency (interleaved, 15 runs, shared box): float ${ms[0]!.toFixed(1)} ms; ${cands.map(([n], i) => `${n} ${ms[i + 1]!.toFixed(1)}`).join('; ')}`,
    );
    for (const s of sessions) await s.release();
  }
  const sweep = opt('--sweep', '');
  if (sweep) {
    const all = await firstOutputs(bytes, judgeSet);
    const order = ref.map((x, i) => [cosine(x.data, all[i]!.data), i] as const).sort((a, b) => a[0] - b[0]);
    const pick = order.slice(0, 4).map(([, i]) => i);
    const sub = pick.map((i) => judgeSet[i]!);
    const r = pick.map((i) => ref![i]!);
    const err = async (b: Uint8Array): Promise<number> => {
      const got = await firstOutputs(b, sub);
      return r.map((x, i) => 1 - cosine(x.data, got[i]!.data)).reduce((a, c) => a + c) / sub.length;
    };
    for (const v of sweep.split(',')) {
      const line: string[] = [];
      for (const f of [1, 0.5, 0.25, 0.125, 0.0625, 0.03125]) {
        const m = parseModel(bytes);
        const g = m.graph;
        const qn = g.consumers(v).find((n) => n.opType === 'QuantizeLinear')!;
        const s0 = g.constant(qn.inputs[1]!)!.toFloat32()[0]!;
        const sn = g.uniqueName(`${v}_sweep`);
        g.setInitializer(Tensor.scalarFloat(sn, s0 * f));
        qn.inputs = [qn.inputs[0]!, sn, ...qn.inputs.slice(2)];
        for (const dq of g.consumers(qn.outputs[0]!)) dq.inputs = [dq.inputs[0]!, sn, ...dq.inputs.slice(2)];
        g.touch();
        line.push(`${f}:${(await err(serializeModel(m))).toExponential(2)}`);
      }
      console.log(`  sweep ${v} (all int8, worst 4 judge, 1-cos): ${line.join(' ')}`);
    }
  }
  if (rank > 0) {
    const all = await firstOutputs(bytes, judgeSet);
    const order = ref.map((x, i) => [cosine(x.data, all[i]!.data), i] as const).sort((a, b) => a[0] - b[0]);
    console.log(`  per image: ${order.map(([c, i]) => `${i}:${c.toFixed(3)}`).join(' ')}`);
    const pick = order.slice(0, rank).map(([, i]) => i);
    const sub = pick.map((i) => judgeSet[i]!);
    const r = pick.map((i) => ref![i]!);
    const wo = await firstOutputs(withFloatActivations(bytes, acts), sub);
    const base = r.map((x, i) => 1 - cosine(x.data, wo[i]!.data)).reduce((a, b) => a + b) / rank;
    const g = parseModel(bytes).graph;
    const cost: { v: string; op: string; c: number; s: number }[] = [];
    for (const v of acts) {
      const got = await firstOutputs(
        withFloatActivations(
          bytes,
          acts.filter((a) => a !== v),
        ),
        sub,
      );
      const c = r.map((x, i) => 1 - cosine(x.data, got[i]!.data)).reduce((a, b) => a + b) / rank - base;
      const qn = g.consumers(v).find((n) => n.opType === 'QuantizeLinear')!;
      cost.push({ v, op: g.producer(v)?.opType ?? 'input', c, s: g.constant(qn.inputs[1]!)!.toFloat32()[0]! });
    }
    const total = cost.reduce((a, c) => a + Math.max(0, c.c), 0);
    console.log(`  weights-only 1-cos ${base.toExponential(3)}; sum single-act costs ${total.toExponential(3)}`);
    for (const c of [...cost].sort((a, b) => b.c - a.c).slice(0, 25))
      console.log(`   ${c.v} (${c.op}) scale ${c.s.toPrecision(3)}: ${c.c.toExponential(3)} (${((100 * c.c) / total).toFixed(1)}%)`);
  }
}
