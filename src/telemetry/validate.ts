// ajv validators compiled once for every payload schema. A failure lists every error with its
// JSON path in one line, so an operator sees all that is wrong with a command at once.
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { EdgefitError } from '../errors.js';
import { PAYLOAD_SCHEMAS, argsSchemas, type PayloadKind, type PayloadTypes } from './payloads.js';
import type { Verb } from './topics.js';

// ajv is CommonJS; under NodeNext its default export arrives wrapped.
const Ajv = ((AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule) as unknown as typeof AjvModule.default;

const ajv = new Ajv({ allErrors: true, strict: false });

const compiled = new Map<string, ValidateFunction>();
function validatorFor(key: string, schema: object): ValidateFunction {
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(key, v);
  }
  return v;
}

export function formatAjvErrors(errors: ErrorObject[] | null | undefined, root = ''): string {
  return (errors ?? [])
    .map((e) => `${root}${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? ` '${String(e.params.additionalProperty)}'` : ''}`)
    .join('; ');
}

export function checkPayload<K extends PayloadKind>(kind: K, value: unknown): PayloadTypes[K] {
  const v = validatorFor(kind, PAYLOAD_SCHEMAS[kind]);
  if (!v(value)) throw new EdgefitError('DATA', `invalid ${kind} payload: ${formatAjvErrors(v.errors)}`);
  return value as PayloadTypes[K];
}

export function checkArgs(verb: Verb, value: unknown): Record<string, unknown> {
  const v = validatorFor(`args:${verb}`, argsSchemas[verb]);
  if (!v(value)) throw new EdgefitError('DATA', `invalid arguments for '${verb}': ${formatAjvErrors(v.errors, 'args')}`);
  return value as Record<string, unknown>;
}

/** Compile an arbitrary schema (used by the config loader) with the same options. */
export function compileSchema(schema: object, opts: { useDefaults?: boolean } = {}): ValidateFunction {
  const a = opts.useDefaults ? new Ajv({ allErrors: true, strict: false, useDefaults: true }) : ajv;
  return a.compile(schema);
}
