// Board profiles (profiles/*.json): loading, validation against profiles/schema.json, and
// choosing the one that fits the probed hardware.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLatency, profileBudgets, type Budgets, type ProfileBudgets } from '../budgets/index.js';
import { formatIssues, validate, type ValidationIssue } from '../config/validate.js';
import { EdgefitError } from '../errors.js';
import type { HardwareProfile, Int8Benefit, Int8Flavour } from './types.js';

export type ProfileArch = 'x64' | 'arm64' | 'arm' | 'ia32';

export interface Int8Settings {
  activation: 'u8' | 's8';
  weight: 's8' | 'u8';
  perChannel: boolean;
  reduceRange: boolean;
}

/** A board profile file, as validated by profiles/schema.json. */
export interface BoardProfile {
  name: string;
  description: string;
  match: { boardModel?: string; arch?: ProfileArch[]; cpuParts?: string[] };
  /** latencyMs (absolute) or latency ('0.5x' of the unmodified model's measured latency). */
  budgets: ProfileBudgets;
  threads: number | 'auto';
  int8: Int8Settings | 'auto';
  notes?: string[];
  /** Where it was loaded from (not part of the file). */
  path: string;
}

/** The chosen profile with 'auto' fields resolved against the hardware. */
export interface SelectedProfile {
  profile: BoardProfile;
  /** 'override' when named by --profile, else 'match'. */
  source: 'override' | 'match';
  /** The match rules that held, e.g. ['boardModel', 'arch']; empty for an override. */
  matchedBy: string[];
  /** The profile's budgets in the one Budgets form (src/budgets). */
  budgets: Budgets;
  threads: number;
  int8: Int8Settings & { benefit: Int8Benefit; reason: string; source: 'profile' | 'detected' };
}

/** Raised when profile files are malformed: every problem of every file, with path and field. */
export class ProfileError extends EdgefitError {
  readonly issues: Array<ValidationIssue & { file: string }>;
  constructor(issues: Array<ValidationIssue & { file: string }>) {
    const byFile = new Map<string, ValidationIssue[]>();
    for (const i of issues) byFile.set(i.file, [...(byFile.get(i.file) ?? []), i]);
    const msg = [...byFile].map(([f, list]) => `${f}: ${formatIssues(list)}`).join(' | ');
    super('CONFIG', `invalid board profile ${msg}`);
    this.issues = issues;
  }
}

/** profiles/ at the repository (package) root, found by walking up from this module. */
export function defaultProfilesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const cand = join(dir, 'profiles');
    if (existsSync(join(cand, 'schema.json'))) return cand;
    dir = dirname(dir);
  }
  throw new EdgefitError('INTERNAL', 'cannot find the profiles/ folder with schema.json next to the edgefit install');
}

function readJson(path: string): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(readFileSync(path, 'utf8')) as unknown };
  } catch (e) {
    return { ok: false, message: `not valid JSON (${e instanceof Error ? e.message : String(e)})` };
  }
}

/** Checks JSON Schema cannot express: the name matches the file, the regex compiles. */
function semanticIssues(p: Omit<BoardProfile, 'path'>, file: string): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  const stem = basename(file, '.json');
  if (p.name !== stem) out.push({ path: 'name', message: `must equal the file name '${stem}'` });
  if (p.match.boardModel !== undefined) {
    try {
      new RegExp(p.match.boardModel, 'i');
    } catch (e) {
      out.push({ path: 'match.boardModel', message: `is not a valid regular expression (${e instanceof Error ? e.message : String(e)})` });
    }
  }
  if (p.budgets.latency !== undefined && !(parseLatency(p.budgets.latency) > 0)) {
    out.push({ path: 'budgets.latency', message: 'must be a positive factor such as "0.5x"' });
  }
  return out;
}

// '0.5x' is parsed by src/budgets; re-exported for the profile's callers
export { parseLatency };

/**
 * Load and validate every *.json profile in `dir` (default: the install's profiles/). Throws
 * a ProfileError naming every malformed file and field; duplicates are errors too.
 */
export function loadProfiles(dir: string = defaultProfilesDir()): BoardProfile[] {
  const root = resolve(dir);
  let files: string[];
  try {
    files = readdirSync(root)
      .filter((f) => f.endsWith('.json') && f !== 'schema.json')
      .sort();
  } catch (e) {
    throw new EdgefitError('CONFIG', `cannot read the profiles folder ${root}`, { cause: e });
  }
  const schemaFile = join(root, 'schema.json');
  const schema = readJson(schemaFile);
  if (!schema.ok) throw new EdgefitError('CONFIG', `${schemaFile}: ${schema.message}`);
  const issues: Array<ValidationIssue & { file: string }> = [];
  const out: BoardProfile[] = [];
  const seen = new Map<string, string>();
  for (const f of files) {
    const file = join(root, f);
    const doc = readJson(file);
    if (!doc.ok) {
      issues.push({ file, path: '', message: doc.message });
      continue;
    }
    const r = validate<Omit<BoardProfile, 'path'>>(schema.value as object, doc.value);
    if (!r.ok) {
      for (const e of r.errors) issues.push({ file, ...e });
      continue;
    }
    const sem = semanticIssues(r.value, file);
    if (sem.length) {
      for (const e of sem) issues.push({ file, ...e });
      continue;
    }
    const prev = seen.get(r.value.name);
    if (prev) {
      issues.push({ file, path: 'name', message: `duplicates the profile in ${prev}` });
      continue;
    }
    seen.set(r.value.name, file);
    const { $schema: _ignored, ...rest } = r.value as Omit<BoardProfile, 'path'> & { $schema?: string };
    out.push({ ...rest, path: file });
  }
  if (issues.length) throw new ProfileError(issues);
  if (out.length === 0) throw new EdgefitError('CONFIG', `no board profiles in ${root}`);
  return out;
}

/** How specific a profile's match rules are: a board model beats a CPU part beats an arch. */
export function specificity(p: BoardProfile): number {
  return (p.match.boardModel ? 4 : 0) + (p.match.cpuParts ? 2 : 0) + (p.match.arch ? 1 : 0);
}

/** The match rules that hold for `hw`, or null when any rule given fails. */
export function matchRules(p: BoardProfile, hw: Pick<HardwareProfile, 'arch' | 'board' | 'cpu'>): string[] | null {
  const held: string[] = [];
  if (p.match.boardModel !== undefined) {
    if (!hw.board.model || !new RegExp(p.match.boardModel, 'i').test(hw.board.model)) return null;
    held.push('boardModel');
  }
  if (p.match.arch !== undefined) {
    if (!(p.match.arch as string[]).includes(hw.arch)) return null;
    held.push('arch');
  }
  if (p.match.cpuParts !== undefined) {
    if (!hw.cpu.parts.some((x) => p.match.cpuParts!.includes(x))) return null;
    held.push('cpuParts');
  }
  return held;
}

function resolveProfile(
  p: BoardProfile,
  hw: Pick<HardwareProfile, 'cpu' | 'int8'>,
  source: SelectedProfile['source'],
  matchedBy: string[],
): SelectedProfile {
  const detected: Int8Flavour = hw.int8;
  const int8: SelectedProfile['int8'] =
    p.int8 === 'auto'
      ? {
          activation: detected.activation,
          weight: detected.weight,
          perChannel: detected.perChannel,
          reduceRange: detected.reduceRange,
          benefit: detected.benefit,
          reason: detected.reason,
          source: 'detected',
        }
      : { ...p.int8, benefit: detected.benefit, reason: detected.reason, source: 'profile' };
  // 'auto' threads = physical cores: onnxruntime's intra-op pool gains nothing from SMT siblings
  const threads = p.threads === 'auto' ? Math.max(1, hw.cpu.physicalCores || hw.cpu.cores) : p.threads;
  return { profile: p, source, matchedBy, budgets: profileBudgets(p.budgets), threads, int8 };
}

/** The profile called `name`; an unknown name is a CONFIG error listing the valid ones. */
export function findProfile(profiles: readonly BoardProfile[], name: string): BoardProfile {
  const p = profiles.find((x) => x.name === name);
  if (!p) {
    const names = profiles.map((x) => x.name).sort();
    throw new EdgefitError('CONFIG', `unknown board profile '${name}'; valid names: ${names.join(', ')}`);
  }
  return p;
}

/**
 * Pick the board profile for `hw`: the named one when `override` is given (unknown names are a
 * CONFIG error listing the valid ones), else the most specific profile whose rules all hold
 * (generic-* profiles, which match on arch only, come last).
 */
export function selectProfile(
  hw: Pick<HardwareProfile, 'arch' | 'board' | 'cpu' | 'int8'>,
  override?: string,
  profiles: readonly BoardProfile[] = loadProfiles(),
): SelectedProfile {
  if (override !== undefined) return resolveProfile(findProfile(profiles, override), hw, 'override', []);
  const names = profiles.map((p) => p.name).sort();
  const ranked = profiles
    .map((p) => ({ p, held: matchRules(p, hw) }))
    .filter((x): x is { p: BoardProfile; held: string[] } => x.held !== null)
    .sort((a, b) => specificity(b.p) - specificity(a.p) || a.p.name.localeCompare(b.p.name));
  const best = ranked[0];
  if (!best) {
    throw new EdgefitError('CONFIG', `no board profile matches this machine (arch ${hw.arch}, board ${hw.board.model ?? 'unknown'})`, {
      remedy: { option: 'profile', choices: names },
    });
  }
  return resolveProfile(best.p, hw, 'match', best.held);
}
