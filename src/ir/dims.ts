// The one check of input dims given from outside (CLI --shape of every command, the agent's
// model.shapes, serve's warm-up shapes, a library caller's shapes map). A zero or negative dim is
// never a shape a model can be timed or judged on: a 0x3x640x640 input makes an empty tensor that
// runs in no time, so a fit "meets" any latency budget on nothing (issue 20). Refused up front,
// naming the input, instead.
import { EdgefitError } from '../errors.js';

/** The largest dim accepted: beyond it a tensor cannot be allocated anyway (2^31 elements). */
export const MAX_DIM = 2 ** 31 - 1;

/** `dims` when every dim is a whole number in 1..MAX_DIM (a usage error naming the input otherwise). */
export function checkDims(input: string, dims: readonly number[]): number[] {
  if (dims.length === 0 || dims.length > 16)
    throw new EdgefitError('USAGE', `the shape given for input '${input}' has ${dims.length} dims; give 1 to 16`, {
      remedy: { option: 'shapes', input },
    });
  const bad = dims.find((d) => !(Number.isInteger(d) && d >= 1 && d <= MAX_DIM));
  if (bad !== undefined)
    throw new EdgefitError(
      'USAGE',
      `the shape given for input '${input}' (${dims.join('x')}) has dim ${bad}: every dim must be a whole number of at least 1`,
      { remedy: { option: 'shapes', input } },
    );
  return [...dims];
}

/** checkDims for every input of a shapes map or record. */
export function checkShapes<T extends ReadonlyMap<string, readonly number[]> | Readonly<Record<string, readonly number[]>>>(shapes: T): T {
  const entries = shapes instanceof Map ? [...(shapes as ReadonlyMap<string, readonly number[]>)] : Object.entries(shapes);
  for (const [name, dims] of entries) checkDims(name, dims);
  return shapes;
}
