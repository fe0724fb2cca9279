// The serve endpoint's cost and hot swaps (issue 19), measured in one run on PP-OCRv4 det with a
// real text image (640x640), the server in a forked serve process (ServeProcess, as the agent runs
// it) and the clients here:
//  (a) served p50 vs a bare onnxruntime-node loop in this process, in interleaved blocks (bare with
//      onnxruntime's defaults, bare with idle threads sleeping as the server's sessions do, TCP,
//      socket; the order rotates each round) so load drift on a shared box hits all alike; binary
//      tensor bodies; the issue asks within 5 %;
//  (b) throughput at 1, 2 and 4 concurrent clients (socket, binary);
//  (c) hot swaps between det and its fp16-weights copy (made here) under 4 back-to-back clients,
//      --gap-ms apart: failed requests (must be 0), p99 of requests overlapping a swap (from load
//      sent to loaded answered: the new version loads beside the old one serving) vs the others.
//
//   node dist/scripts/bench-serve.js [--rounds 5] [--block 6] [--threads 2] [--seconds 8] [--swaps 100] [--gap-ms 500]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { OCR_MODELS, ROOT } from '../devkit/paths.js';
import { closeClients, infer, type Target } from '../devkit/serve-client.js';
import { decodeImage, parsePreprocessSpec, preprocessImage } from '../src/data/image.js';
import type { NdArray } from '../src/data/ndarray.js';
import { percentile } from '../src/evaluate/stats.js';
import { quantizeModel } from '../src/fit/quantize/plan.js';
import { loadModel } from '../src/onnx/index.js';
import { openSession, toTensor } from '../src/runtime/session.js';
import { ServeProcess } from '../src/serve/process.js';
import type { ServedModel, ServeStats } from '../src/serve/types.js';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    block: { type: 'string', default: '6' },
    threads: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '8' },
    swaps: { type: 'string', default: '100' },
    'gap-ms': { type: 'string', default: '500' },
  },
});
const rounds = Number(a.rounds),
  block = Number(a.block),
  threads = Number(a.threads),
  seconds = Number(a.seconds),
  swaps = Number(a.swaps),
  gapMs = Number(a['gap-ms']);

const sorted = (xs: readonly number[]): number[] => [...xs].sort((x, y) => x - y);
const p = (xs: readonly number[], q: number): number => percentile(sorted(xs), q);
const f1 = (x: number): string => x.toFixed(1);

const judge = join(ROOT, 'assets/calib/det/judge');
const spec = parsePreprocessSpec(JSON.parse(readFileSync(join(judge, 'preprocess.json'), 'utf8')), judge);
const image = preprocessImage(decodeImage(join(judge, 'page-a.jpg')), spec);
/** The image as one request input (the client copies it into each body). */
const input = (): Record<string, NdArray> => ({ x: image });

const dir = mkdtempSync(join(tmpdir(), 'edgefit-bench-serve-'));
const sp = new ServeProcess();
try {
  console.log(
    `det ${image.shape.join('x')}, threads ${threads}, load average ${loadavg().map(f1).join(' ')} (shared box: compare within this run only)`,
  );
  const where = await sp.start({ host: '127.0.0.1', port: 0, socket: join(dir, 'serve.sock'), token: null, maxBodyMb: 64, statsEveryS: 1 });
  const windows1: ServeStats[] = [];
  sp.on('stats', (st) => windows1.push(st));
  const tcp: Target = { url: where.url };
  const unix: Target = { socket: where.socket };
  const model = (file: string, version: string, level: number, label: string): ServedModel => ({
    file,
    version,
    sha256: version,
    level,
    label,
    threads,
    shapes: { x: image.shape },
  });
  await sp.load(model(OCR_MODELS.det.file, 'det-0', 0, 'fp32'));

  // (a) overhead, interleaved blocks
  // onnxruntime's defaults (idle threads spin), and as the server opens its sessions (they sleep)
  const bare = await openSession(OCR_MODELS.det.file, { threads });
  const bareSleep = await openSession(OCR_MODELS.det.file, { threads, spinning: false });
  const feeds = { x: toTensor(image) };
  await bare.run(feeds);
  await bareSleep.run(feeds);
  await infer(tcp, 'default', input());
  await infer(unix, 'default', input());
  const sides = {
    bare: async () => void (await bare.run(feeds)),
    'bare-nospin': async () => void (await bareSleep.run(feeds)),
    tcp: async () => void (await infer(tcp, 'default', input())),
    socket: async () => void (await infer(unix, 'default', input())),
  } as const;
  const names = Object.keys(sides) as (keyof typeof sides)[];
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const roundP50: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + r) % names.length]!;
      const ts: number[] = [];
      for (let i = 0; i < block; i++) {
        const t0 = performance.now();
        await sides[name]();
        ts.push(performance.now() - t0);
      }
      times[name]!.push(...ts);
      roundP50[name]!.push(p(ts, 0.5));
    }
  }
  // the server's own view of (a): run time in the worker vs received-to-written, per 1 s window
  await new Promise((r) => setTimeout(r, 1200));
  const inA = windows1.splice(0).flatMap((w) => w.perVersion);
  await bare.release();
  await bareSleep.release();
  console.log(
    `\n(a) p50 over ${rounds} rounds x ${block} runs, interleaved (ms): all runs / median of round p50s / ratio to each bare loop`,
  );
  const bareMed = p(roundP50.bare!, 0.5);
  const sleepMed = p(roundP50['bare-nospin']!, 0.5);
  for (const n of names) {
    const med = p(roundP50[n]!, 0.5);
    console.log(
      `  ${n.padEnd(11)} p50 ${f1(p(times[n]!, 0.5))}  round-median ${f1(med)}  x${(med / bareMed).toFixed(3)} of bare, x${(med / sleepMed).toFixed(3)} of bare-nospin`,
    );
  }

  if (inA.length) {
    const run = p(
      inA.map((v) => v.runP50Ms),
      0.5,
    );
    const total = p(
      inA.map((v) => v.totalP50Ms),
      0.5,
    );
    console.log(
      `  inside the server (median of 1 s windows): run p50 ${f1(run)} ms, received-to-written p50 ${f1(total)} ms (+${f1(total - run)} ms)`,
    );
  }

  // (b) throughput
  console.log(`\n(b) throughput over the socket, ${seconds} s each`);
  let base4p99 = NaN;
  for (const c of [1, 2, 4]) {
    const lat: number[] = [];
    let failed = 0;
    const until = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (performance.now() < until) {
          const s = performance.now();
          try {
            await infer(unix, 'default', input());
            lat.push(performance.now() - s);
          } catch {
            failed++;
          }
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    if (c === 4) base4p99 = p(lat, 0.99);
    console.log(
      `  ${c} client(s): ${(lat.length / wall).toFixed(2)} req/s, p50 ${f1(p(lat, 0.5))} ms, p99 ${f1(p(lat, 0.99))} ms, failed ${failed}`,
    );
  }

  // (c) hot swaps under load
  const copy = join(dir, 'det-fp16.onnx');
  const q = await quantizeModel(loadModel(OCR_MODELS.det.file), { mode: 'fp16' });
  writeFileSync(copy, q.bytes);
  const levels = [OCR_MODELS.det.file, copy];
  const windows: [number, number][] = [];
  const reqs: { start: number; end: number }[] = [];
  const errors: string[] = [];
  let done = false;
  const loadMs: number[] = [];
  const clients = [0, 1, 2, 3].map(async (c) => {
    while (!done) {
      const s = performance.now();
      try {
        await infer(c % 2 ? unix : tcp, 'default', input());
        reqs.push({ start: s, end: performance.now() });
      } catch (e) {
        errors.push(String(e).slice(0, 200));
      }
    }
  });
  const t0 = performance.now();
  for (let i = 1; i <= swaps; i++) {
    // a pause between swaps: requests that overlap none are the baseline under the same load
    await new Promise((r) => setTimeout(r, gapMs));
    const s = performance.now();
    const l = await sp.load(model(levels[i % 2]!, `det-${i}`, i % 2, i % 2 ? 'fp16 weights' : 'fp32'));
    windows.push([s, performance.now()]);
    loadMs.push(l.loadMs);
  }
  done = true;
  await Promise.all(clients);
  const wall = (performance.now() - t0) / 1000;
  const overlaps = (r: { start: number; end: number }): boolean => windows.some(([s, e]) => r.start < e && r.end > s);
  const during = reqs.filter(overlaps).map((r) => r.end - r.start);
  const outside = reqs.filter((r) => !overlaps(r)).map((r) => r.end - r.start);
  console.log(`\n(c) ${swaps} hot swaps (det fp32 <-> fp16 weights) ${gapMs} ms apart under 4 clients, ${f1(wall)} s`);
  console.log(`  requests ${reqs.length}, failed ${errors.length}${errors.length ? `: ${errors[0]}` : ''}`);
  console.log(`  overlapping a swap: ${during.length}, p50 ${f1(p(during, 0.5))} ms, p99 ${f1(p(during, 0.99))} ms`);
  console.log(
    `  not overlapping:    ${outside.length}, p50 ${f1(p(outside, 0.5))} ms, p99 ${f1(p(outside, 0.99))} ms (4 clients without swaps: p99 ${f1(base4p99)} ms)`,
  );
  console.log(`  load (worker start to ready, warmed up): p50 ${f1(p(loadMs, 0.5))} ms, max ${f1(Math.max(...loadMs))} ms`);
} finally {
  closeClients();
  await sp.stop();
  rmSync(dir, { recursive: true, force: true });
}
