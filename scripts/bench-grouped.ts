// Whole groups or cuts within groups? For a grouped 3x3 Conv between two 1x1 Convs (a RegNetX /
// ResNeXt bottleneck, issue 17), time the block at its full width and pruned both ways, on this
// box, side by side in one process:
//   node dist/scripts/bench-grouped.js [--runs 60] [--threads 2]
// Shapes are RegNetX-400MF's stages (group width 16). Per stage: the block as it is (G groups of
// 16), cut within every group (G groups of w), and whole groups removed (G' groups of 16), where
// G' is chosen twice: the same kept width as the cut within groups (G' * 16 ~ G * w), and the same
// MACs. All variants of a stage are run round-robin (order rotated every round), medians per
// variant, each as a ratio to the full block's median: only ratios within one run are compared.
import { parseArgs } from 'node:util';
import { ModelBuilder } from '../devkit/builder.js';
import { serializeModel } from '../src/onnx/index.js';
import { analyzeCost } from '../src/analyze/cost.js';
import { annotateShapes } from '../src/ir/shapes.js';
import { floatTensor, openSession } from '../src/runtime/session.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '60' }, threads: { type: 'string', default: '2' } } });
const RUNS = Number(args.runs);
const THREADS = Number(args.threads);

/** RegNetX-400MF's stages: residual width, bottleneck width, spatial size (group width 16). */
const STAGES = [
  { name: 'stage1', res: 32, groups: 2, hw: 56 },
  { name: 'stage2', res: 64, groups: 4, hw: 28 },
  { name: 'stage3', res: 160, groups: 10, hw: 14 },
  { name: 'stage4', res: 400, groups: 25, hw: 7 },
] as const;

/** 1x1 (res -> G*w) -> ReLU -> grouped 3x3 (G groups of w) -> ReLU -> 1x1 (-> res). */
function block(res: number, groups: number, width: number, hw: number): { bytes: Uint8Array; macs: number } {
  const b = new ModelBuilder({ seed: 7 });
  const c = groups * width;
  let x = b.input('x', [1, res, hw, hw]);
  x = b.relu(b.conv(x, c, { k: 1 }));
  x = b.relu(b.conv(x, c, { k: 3, group: groups }));
  b.output(b.conv(x, res, { k: 1 }));
  const m = b.build();
  annotateShapes(m, { shapes: new Map([['x', [1, res, hw, hw]]]) });
  return { bytes: serializeModel(m), macs: analyzeCost(m).macs ?? NaN };
}

const med = (x: number[]): number => [...x].sort((p, q) => p - q)[x.length >> 1]!;

for (const s of STAGES) {
  const variants: { label: string; groups: number; width: number }[] = [{ label: 'full', groups: s.groups, width: 16 }];
  for (const w of [12, 8]) {
    variants.push({ label: `within ${w}/16`, groups: s.groups, width: w });
    const sameWidth = Math.max(1, Math.round((s.groups * w) / 16));
    const sameMacs = Math.max(1, Math.round((s.groups * w * w) / 256));
    variants.push({ label: `whole, width of within ${w}`, groups: sameWidth, width: 16 });
    if (sameMacs !== sameWidth) variants.push({ label: `whole, 3x3 MACs of within ${w}`, groups: sameMacs, width: 16 });
  }
  const built = variants.map((v) => ({ ...v, ...block(s.res, v.groups, v.width, s.hw) }));
  const sessions = await Promise.all(built.map((v) => openSession(v.bytes, { threads: THREADS, spinning: false })));
  const n = s.res * s.hw * s.hw;
  const feeds = {
    x: floatTensor(
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.0137)),
      [1, s.res, s.hw, s.hw],
    ),
  };
  const times: number[][] = built.map(() => []);
  for (const ses of sessions) for (let i = 0; i < 3; i++) await ses.run(feeds);
  for (let r = 0; r < RUNS; r++) {
    for (let j = 0; j < sessions.length; j++) {
      const k = (j + r) % sessions.length;
      const t0 = performance.now();
      await sessions[k]!.run(feeds);
      times[k]!.push(performance.now() - t0);
    }
  }
  for (const ses of sessions) await ses.release();
  const base = med(times[0]!);
  console.log(`\n${s.name}: residual ${s.res}, ${s.groups} groups of 16, ${s.hw}x${s.hw}; full block ${base.toFixed(3)} ms`);
  console.log('variant                          groups x width  channels  MACs kept  time ratio');
  built.forEach((v, i) => {
    console.log(
      `${v.label.padEnd(33)}${`${v.groups} x ${v.width}`.padEnd(16)}${String(v.groups * v.width).padEnd(10)}` +
        `${(v.macs / built[0]!.macs).toFixed(3).padEnd(11)}${(med(times[i]!) / base).toFixed(3)}`,
    );
  });
}
console.log(`\n${RUNS} round-robin rounds at ${THREADS} threads, medians; a shared box: ratios within one stage only.`);
