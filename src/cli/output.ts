import { EdgefitError, oneLine, type OptionName, type Remedy } from '../errors.js';
import { checkDims } from '../ir/dims.js';
import { isFreezeStride } from '../passes/train/freeze.js';

/** The flag of each option a library error can name (the agent's config keys: src/config/remedy.ts). */
const FLAGS: Record<OptionName, string> = {
  shapes: '--shape',
  profile: '--profile',
  calib: '--calib',
  token: '--token',
  latencyMs: '--latency-ms',
  latency: '--latency',
  minFidelity: '--min-fidelity',
  ramMb: '--ram-mb',
  sizeMb: '--size-mb',
  structured: '--structured',
  targetMacs: '--target-macs',
  targetLatency: '--target-latency',
  unstructured: '--unstructured',
  steps: '--steps',
  round: '--round',
  task: '--task',
};

/** What to type: options that supply something missing say how; the others name the flag to correct. */
function remedyText(r: Remedy): string {
  switch (r.option) {
    case 'shapes':
      return `: give --shape ${r.input ?? '<input>'}=${r.example ?? '<dims>'}${r.input ? '' : ' for every dynamic input'}`;
    case 'profile':
      return r.choices ? `: pass --profile with one of: ${r.choices.join(', ')}` : ' (--profile)';
    case 'calib':
      return ': give --calib <data>';
    case 'token':
      return ': give --token (16+ characters)';
    default:
      return ` (${FLAGS[r.option]})`;
  }
}

/** The error's one line, with its remedy in CLI terms. */
export function cliMessage(e: unknown): string {
  const msg = oneLine(e);
  return e instanceof EdgefitError && e.remedy ? `${msg}${remedyText(e.remedy)}` : msg;
}

/** Print one line (stack only with --verbose) and return the exit code. */
export function reportError(e: unknown, verbose: boolean): number {
  const usage = typeof e === 'object' && e !== null && (e as { usage?: boolean }).usage === true;
  const msg = cliMessage(e);
  process.stderr.write(`edgefit: ${msg}\n`);
  if (usage) process.stderr.write('(see edgefit --help)\n');
  if (verbose && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  if (e instanceof EdgefitError) return e.exitCode;
  return usage ? 2 : 1;
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** Parse repeated --shape name=1x3x640x640 flags (every dim at least 1: checkDims). */
export function parseShapes(specs: readonly string[] | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const s of specs ?? []) {
    // signed so that x=-1x3 is refused by the dims check, which says what is wrong with it
    const m = /^(.+)=(-?\d+(?:x-?\d+)*)$/.exec(s);
    if (!m) throw new EdgefitError('USAGE', `bad --shape '${s}': expected name=dims, e.g. x=1x3x640x640`);
    out.set(m[1]!, checkDims(m[1]!, m[2]!.split('x').map(Number)));
  }
  return out;
}

/** --train-ram-mb: undefined when not given, else a positive number of MB (the trainer's RAM budget, issue 18). */
export function trainRamOption(v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!(v > 0 && Number.isFinite(v))) throw new EdgefitError('USAGE', `--train-ram-mb must be a positive number of MB, got ${v}`);
  return v;
}

/** --train-freeze-stride: undefined when not given, else 0 (train every layer) or an integer stride from 2 (TrainSpec.freezeStride). */
export function freezeStrideOption(v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!isFreezeStride(v))
    throw new EdgefitError('USAGE', `--train-freeze-stride must be 0 (train every layer) or an integer from 2, got ${v}`);
  return v;
}

/** The --train-freeze-stride option's text (prune --recover distill: default 8; quantize --mode qat: default 0). */
export const freezeStrideHelp = (dflt: number): string =>
  `training leaves frozen the layers before the first map at 1/N of the input side (the stem, whose backward costs most; default ${dflt}, 0 trains every layer)`;
