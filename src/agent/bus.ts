// Typed in-process event bus: components talk through it instead of holding each other.
import { EventEmitter } from 'node:events';
import type { EventType } from '../telemetry/payloads.js';

export interface AgentBusEvents {
  /** A reportable event; the telemetry side turns it into an `events` message via the outbox. */
  event: [type: EventType, message: string, data: Record<string, unknown>, txn: string | undefined];
  log: [line: string];
}

export class AgentBus extends EventEmitter<AgentBusEvents> {
  report(type: EventType, message: string, data: Record<string, unknown> = {}, txn?: string): void {
    this.emit('event', type, message, data, txn);
  }
}
