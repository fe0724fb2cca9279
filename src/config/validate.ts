// Generic JSON-Schema validation shared by board profiles and agent configuration (compiled by
// the one ajv set-up, src/util/ajv.ts). Every error is reported, each with the JSON path of the
// offending field, so that a user fixing a config file sees all problems at once instead of one per run.
import type { AnySchema, ErrorObject } from 'ajv';
import { compileSchema } from '../util/ajv.js';

export interface ValidationIssue {
  /** Dotted path of the field, e.g. 'budgets.ramMb' or 'match.cpuParts[1]'; '' for the document itself. */
  path: string;
  message: string;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: ValidationIssue[] };

/** JSON pointer '/a/0/b' -> 'a[0].b'. */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function toIssue(e: ErrorObject): ValidationIssue {
  const base = pointerToPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  // name the field that is missing or unexpected, not its parent object
  if (e.keyword === 'required') return { path: join(base, String(p.missingProperty)), message: 'is required' };
  if (e.keyword === 'additionalProperties') return { path: join(base, String(p.additionalProperty)), message: 'is not an allowed field' };
  if (e.keyword === 'enum') {
    return { path: base, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
  }
  return { path: base, message: e.message ?? e.keyword };
}

/** Validate `data` against `schema`; returns every error with its path (deduplicated). */
export function validate<T = unknown>(schema: AnySchema, data: unknown): ValidationResult<T> {
  const fn = compileSchema(schema);
  if (fn(data)) return { ok: true, value: data as T };
  const seen = new Set<string>();
  const errors: ValidationIssue[] = [];
  for (const e of fn.errors ?? []) {
    // oneOf/anyOf failures repeat what their branches said; the branch errors are the useful ones
    // (unless several branches passed: then the oneOf error is the only explanation)
    if (e.keyword === 'anyOf' || e.keyword === 'if') continue;
    if (e.keyword === 'oneOf') {
      const passing = (e.params as { passingSchemas?: unknown }).passingSchemas;
      if (!Array.isArray(passing)) continue;
      errors.push({ path: pointerToPath(e.instancePath), message: 'must match exactly one alternative, but matches several' });
      continue;
    }
    const issue = toIssue(e);
    const key = `${issue.path}\u0000${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      errors.push(issue);
    }
  }
  if (errors.length === 0) errors.push({ path: '', message: 'does not match the schema' });
  return { ok: false, errors };
}

/** One line per error: '<path>: <message>' ('(root)' for the document itself). */
export function formatIssues(errors: readonly ValidationIssue[]): string {
  return errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ');
}
