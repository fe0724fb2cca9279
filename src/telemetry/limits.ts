// How large a request may be, from security.maxModelMb: the one place the agent's MQTT packet
// limit, the per-topic limit and the command router's size check come from (issue 20).
import { MQTT_MAX_PACKET } from './packet-guard.js';
import type { Topics } from './topics.js';

/** Every request but a deploy is a few hundred bytes of JSON (budgets, a txn, a signature). */
export const SMALL_REQUEST_BYTES = 64 * 1024;
/** What surrounds a deploy's base64 model: the JSON envelope, its signatures, topic, MQTT header. */
export const ENVELOPE_BYTES = 64 * 1024;

/** The largest request `verb` may be: a deploy carries a model of up to maxModelMb in base64. */
export function maxRequestBytes(verb: string, maxModelMb: number): number {
  if (verb !== 'deploy') return SMALL_REQUEST_BYTES;
  return Math.min(Math.ceil((maxModelMb * 1048576) / 3) * 4 + ENVELOPE_BYTES, MQTT_MAX_PACKET);
}

/** The agent's MQTT packet limit (its largest request) and the tighter one by request topic. */
export function agentPacketLimits(topics: Topics, maxModelMb: number): { maxBytes: number; publishLimit: (topic: string) => number } {
  return {
    maxBytes: maxRequestBytes('deploy', maxModelMb),
    publishLimit: (topic) => maxRequestBytes(topics.verbOf(topic) ?? '', maxModelMb),
  };
}
