// Sequence recognisers judged by their text (issue 16): a CTC output [N, T, C] (PP-OCR rec: a
// Softmax over C classes, class 0 the blank) is greedily decoded, for the reference and the
// candidate alike, and the two texts compared by edit distance. Per-step argmax agreement
// flatters a recogniser, since most steps are blank; what its users read is the text.
// No dictionary is needed: the edit distance over class indices is the one over characters,
// since the dictionary maps indices to characters one to one.
import type { Outputs } from './compare.js';
import type { TaskDef } from './task-def.js';
import { argmax } from './metrics.js';

/** CTC's blank class (PP-OCR's CTCLabelDecode puts 'blank' first). */
export const CTC_BLANK = 0;

/** A [N, T, C] output with T > 1 steps over C > 2 classes. */
export const isSequenceShape = (dims: readonly number[]): boolean => dims.length === 3 && dims[1]! > 1 && dims[2]! > 2;

/** Greedy CTC decoding of steps [off, off + T*C): the argmax of each step, repeats collapsed, blanks dropped. */
export function ctcGreedy(v: ArrayLike<number>, off: number, steps: number, classes: number, blank = CTC_BLANK): number[] {
  const out: number[] = [];
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    const k = argmax(v, off + t * classes, classes);
    if (k !== prev && k !== blank) out.push(k);
    prev = k;
  }
  return out;
}

/** Levenshtein distance (insertions, deletions, substitutions each 1), two rows of O(|b|). */
export function editDistance(a: readonly number[], b: readonly number[]): number {
  let prev = new Int32Array(b.length + 1).map((_, j) => j);
  let cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur[j] = Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

const sequenceOutput = (ref: Outputs): string | undefined => Object.keys(ref).find((n) => isSequenceShape(ref[n]!.dims));

export const CTC_TASK: TaskDef = {
  describe: "text agreement: 1 - character error rate of the greedy CTC decoding against the reference's text",
  metric: 'textAgreement',
  applies: (ref) => sequenceOutput(ref) !== undefined,
  // [edits, reference characters, lines decoded exactly alike, lines]
  stats(ref, got) {
    const name = sequenceOutput(ref)!;
    const [n, steps, classes] = ref[name]!.dims as [number, number, number];
    const a = ref[name]!.data;
    const b = got[name]!.data;
    let edits = 0,
      chars = 0,
      exact = 0;
    for (let i = 0; i < n; i++) {
      const want = ctcGreedy(a, i * steps * classes, steps, classes);
      const have = ctcGreedy(b, i * steps * classes, steps, classes);
      const d = editDistance(want, have);
      edits += d;
      chars += want.length;
      if (d === 0) exact++;
    }
    return [edits, chars, exact, n];
  },
  figures([edits, chars, exact, lines]) {
    // both empty: the same (no) text; text where the reference reads none: all wrong
    const cer = chars ? edits! / chars : edits ? 1 : 0;
    return { value: Math.max(0, 1 - cer), cer, lineExact: lines ? exact! / lines : 1 };
  },
  unit: ([, chars]) => 1 / Math.max(1, chars!),
};
