// The candidate cache: a measurement file is written once; rounds a re-timing adds live beside it
// and a later get() pools them, newest RETIMED_ROUNDS_KEPT only; a torn file of either kind is
// no worse than none.
import t from 'tap';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CandidateCache, isMeasurementFile, RETIMED_ROUNDS_KEPT, sha256 } from '../../src/fit/cache.js';
import type { Measured } from '../../src/fit/search.js';
import type { LatencyRound } from '../../src/fit/types.js';
import { testDir } from '../helpers/tmp.js';

const dir = testDir('edgefit-cache-');
const modelPath = join(dir, 'm.onnx');
writeFileSync(modelPath, 'model bytes');
const round = (candidate: number, reference = 10): LatencyRound => ({ candidateP50Ms: candidate, referenceP50Ms: reference });
const measured = (rounds?: LatencyRound[]): Measured => ({
  latencyP50Ms: 5,
  latencyP95Ms: 6,
  modelRssMb: 10,
  fidelity: 0.99,
  sizeBytes: 11,
  compressedBytes: 11,
  modelPath,
  sha256: sha256(readFileSync(modelPath)),
  ...(rounds ? { rounds } : {}),
});

t.test('re-timed rounds are pooled by a later get, and the measurement file is not rewritten', async (t) => {
  const c = new CandidateCache(join(dir, 'a'), 'salt');
  const key = c.key({ structured: 0.25 });
  const first = [round(2), round(9), round(8)]; // the first round met a quiet box, two a loaded one
  c.put(key, measured(first));
  const file = join(dir, 'a', `${key}.json`);
  const before = { text: readFileSync(file, 'utf8'), mtimeMs: statSync(file).mtimeMs };
  c.addRounds(key, [round(5), round(5.2), round(4.9)]);
  // a resumed fit counts what it re-uses by the measurement files alone
  t.same(readdirSync(join(dir, 'a')).filter(isMeasurementFile), [`${key}.json`], 'one measurement file, beside its re-timed rounds');
  t.ok(readdirSync(join(dir, 'a')).includes(`retimed-${key}.json`));
  t.notOk(isMeasurementFile(`sensitivity-${key}.json`), "the sensitivity probe's file is not one");
  t.same(
    c.get(key)!.rounds!.map((r) => r.candidateP50Ms),
    [2, 9, 8, 5, 5.2, 4.9],
    'the measurement rounds, then the re-timed ones',
  );
  t.same({ text: readFileSync(file, 'utf8'), mtimeMs: statSync(file).mtimeMs }, before, 'the measurement file as it was');
  // a second cache over the same folder (a later fit, a restarted agent) sees the same
  t.equal(new CandidateCache(join(dir, 'a'), 'salt').get(key)!.rounds!.length, 6);
});

t.test('only the newest re-timed rounds are kept', async (t) => {
  const c = new CandidateCache(join(dir, 'b'), 'salt');
  const key = c.key({ quant: 'int8' });
  c.put(key, measured([round(1), round(1), round(1)]));
  for (let i = 0; i < 5; i++) c.addRounds(key, [round(10 + i), round(10 + i), round(10 + i)]);
  const got = c.get(key)!.rounds!;
  t.equal(got.length, 3 + RETIMED_ROUNDS_KEPT);
  t.same(
    got.slice(3).map((r) => r.candidateP50Ms),
    Array.from({ length: RETIMED_ROUNDS_KEPT }, (_, i) => 10 + Math.floor((i + 15 - RETIMED_ROUNDS_KEPT) / 3)),
    'the newest, in the order timed',
  );
});

t.test('nothing is added to a candidate the cache does not hold, or one measured without rounds', async (t) => {
  const c = new CandidateCache(join(dir, 'c'), 'salt');
  c.addRounds(c.key({ x: 1 }), [round(3)]);
  t.equal(c.get(c.key({ x: 1 })), undefined, 'still a miss');
  const ref = c.key({ reference: true });
  c.put(ref, measured()); // the original as deployed: timed in one go, no rounds
  c.addRounds(ref, [round(3)]);
  t.equal(c.get(ref)!.rounds, undefined, 'its figures stay its own');
});

t.test('a torn re-timing file leaves the measurement alone; a torn measurement is a miss', async (t) => {
  const c = new CandidateCache(join(dir, 'd'), 'salt');
  const key = c.key({ structured: 0.5 });
  c.put(key, measured([round(4), round(4), round(4)]));
  writeFileSync(join(dir, 'd', `retimed-${key}.json`), '{"rounds": [{"candidateP50Ms": 3, "refer');
  t.equal(c.get(key)!.rounds!.length, 3, 'torn JSON: the measurement alone');
  writeFileSync(join(dir, 'd', `retimed-${key}.json`), JSON.stringify({ rounds: [{ candidateP50Ms: -1, referenceP50Ms: 2 }] }));
  t.equal(c.get(key)!.rounds!.length, 3, 'a round no timing could give: the measurement alone');
  c.addRounds(key, [round(6)]);
  t.same(
    c.get(key)!.rounds!.map((r) => r.candidateP50Ms),
    [4, 4, 4, 6],
    'a new re-timing replaces the unreadable file',
  );
  writeFileSync(join(dir, 'd', `${key}.json`), '{"latencyP50Ms": 5, "mod');
  t.equal(c.get(key), undefined, 'a torn measurement is a cache miss');
});
