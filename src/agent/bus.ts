// Typed in-process event bus: components talk through it instead of holding each other.
// Events say what happened; a component that must wait for another's result (a deploy, a probe
// load) is given that one function at wiring time instead.
import { EventEmitter } from 'node:events';
import type { Budgets, FrontierEntry } from '../fit/types.js';
import type { EventType, ResponsePayload } from '../telemetry/payloads.js';
import type { ServeStats } from '../serve/types.js';
import type { HardwareFacts } from './hardware.js';
import type { LatencyStats } from './latency.js';
import type { ModelVersion } from './model-store.js';

export interface AgentBusEvents {
  /** A reportable event; the telemetry side turns it into an `events` message via the outbox. */
  event: [type: EventType, message: string, data: Record<string, unknown>, txn: string | undefined];
  log: [line: string];
  /** The hardware was profiled (once, at start). */
  profiled: [hw: HardwareFacts];
  /** A fit finished (or a stored one matches): its choice should be served (null: the original,
   * when no entry keeps the fidelity floor). */
  'fit:done': [fit: { fitId: number; chosen: FrontierEntry | null; txn: string | undefined }];
  /** A model version is now the deployed one and the probe serves it (deploy, step, rollback). */
  deployed: [d: { version: ModelVersion; source: string; txn: string | undefined }];
  /** Live latency of what is deployed, from a probe or from served requests (`source`); null when a
   * newly loaded model has not been measured yet. */
  latency: [stats: LatencyStats | null];
  /** A stats window from the serve process (served requests and their latency, per version). */
  'serve:stats': [stats: ServeStats];
  /** A set-budget command changed the persisted budgets. */
  'budgets:changed': [b: { budgets: Budgets; txn: string | undefined }];
  /** A request arrived on request/<verb> (raw: the command router parses and checks it).
   * `bytes`: set when it was over the MQTT packet limit, so its payload was never buffered. */
  command: [verb: string, payload: Buffer, bytes?: number];
  /** The answer to a request, for response/<verb>. */
  response: [verb: string, payload: ResponsePayload];
}

export class AgentBus extends EventEmitter<AgentBusEvents> {
  report(type: EventType, message: string, data: Record<string, unknown> = {}, txn?: string): void {
    this.emit('event', type, message, data, txn);
  }
}

/** What the agent's parts have in common: started in order by agent.ts, stopped in reverse. */
export interface Component {
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}
