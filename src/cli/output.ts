import { EdgefitError, oneLine } from '../errors.js';

/** Print one line (stack only with --verbose) and return the exit code. */
export function reportError(e: unknown, verbose: boolean): number {
  const usage = typeof e === 'object' && e !== null && (e as { usage?: boolean }).usage === true;
  const msg = oneLine(e);
  process.stderr.write(`edgefit: ${msg}\n`);
  if (usage) process.stderr.write('(see edgefit --help)\n');
  if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  if (e instanceof EdgefitError) return e.exitCode;
  return usage ? 2 : 1;
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Parse repeated --shape name=1x3x640x640 flags. */
export function parseShapes(specs: readonly string[] | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const s of specs ?? []) {
    const m = /^(.+)=(\d+(?:x\d+)*)$/.exec(s);
    if (!m) throw new EdgefitError('USAGE', `bad --shape '${s}': expected name=dims, e.g. x=1x3x640x640`);
    out.set(m[1]!, m[2]!.split('x').map(Number));
  }
  return out;
}
