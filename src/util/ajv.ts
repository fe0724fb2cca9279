// The one ajv set-up (issue 15): every JSON Schema in edgefit (agent config, board profiles, MQTT
// payloads and command arguments, checked by the agent and by the dashboard) is compiled here,
// with the same options, so a schema means the same thing wherever it is checked.
import { Ajv, type AnySchema, type ValidateFunction } from 'ajv';
import { EdgefitError } from '../errors.js';

// strict: a typo'd keyword in one of our schemas is an error, not a silently ignored rule.
// strictRequired off: 'oneOf: [{required: [a]}, {required: [b]}]' (one of two fields) is legitimate.
// allowUnionTypes: nullable fields are written type: ['number', 'null'].
export const AJV_OPTIONS = { allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true } as const;

// Compiled validators cached by schema object and by content. Each distinct schema gets its own
// ajv instance, so two files declaring the same $id (a copied or edited schema) never collide.
const byObject = new WeakMap<object, ValidateFunction>();
const byContent = new Map<string, ValidateFunction>();

/** The validator for `schema` (compiled once); an invalid schema is a CONFIG error. */
export function compileSchema(schema: AnySchema): ValidateFunction {
  const cachedObj = typeof schema === 'object' ? byObject.get(schema) : undefined;
  if (cachedObj) return cachedObj;
  const key = JSON.stringify(schema);
  let fn = byContent.get(key);
  if (!fn) {
    try {
      fn = new Ajv(AJV_OPTIONS).compile(schema);
    } catch (e) {
      throw new EdgefitError('CONFIG', `invalid JSON Schema: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    byContent.set(key, fn);
  }
  if (typeof schema === 'object') byObject.set(schema, fn);
  return fn;
}
