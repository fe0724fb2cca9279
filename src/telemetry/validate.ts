// Payload and command-argument validation, compiled once per schema by the one ajv set-up
// (src/util/ajv.ts). A failure lists every error with its JSON path in one line, so an operator
// sees all that is wrong with a command at once.
import type { ErrorObject } from 'ajv';
import { EdgefitError } from '../errors.js';
import { compileSchema } from '../util/ajv.js';
import { PAYLOAD_SCHEMAS, argsSchemas, type PayloadKind, type PayloadTypes } from './payloads.js';
import type { Verb } from './topics.js';

export function formatAjvErrors(errors: ErrorObject[] | null | undefined, root = ''): string {
  return (errors ?? [])
    .map(
      (e) =>
        `${root}${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? ` '${String(e.params.additionalProperty)}'` : ''}`,
    )
    .join('; ');
}

export function checkPayload<K extends PayloadKind>(kind: K, value: unknown): PayloadTypes[K] {
  const v = compileSchema(PAYLOAD_SCHEMAS[kind]);
  if (!v(value)) throw new EdgefitError('DATA', `invalid ${kind} payload: ${formatAjvErrors(v.errors)}`);
  return value as PayloadTypes[K];
}

export function checkArgs(verb: Verb, value: unknown): Record<string, unknown> {
  const v = compileSchema(argsSchemas[verb]);
  if (!v(value)) throw new EdgefitError('DATA', `invalid arguments for '${verb}': ${formatAjvErrors(v.errors, 'args')}`);
  return value as Record<string, unknown>;
}
