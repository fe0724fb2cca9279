// The fleet soak's report (scripts/soak-fleet.ts writes it with --json; its test reads it).
export interface FleetSoakRow {
  s: number;
  agentRssMb: number;
  dashboardRssMb: number;
  brokerRssMb: number | null;
  metrics: number;
  delayP50S: number | null;
  delayMaxS: number | null;
  /** rows in the agent's outbox (any stream) and its dropped-rows counter, from its state.db */
  outboxPending: number | null;
  outboxDropped: number | null;
  requestsSent: number;
  dashboardDevices: number | null;
}
export interface FleetSoakReport {
  config: { durationS: number; devices: number; simRate: number; floodRate: number; metricsIntervalS: number; broker: string };
  rows: FleetSoakRow[];
  metrics: {
    received: number;
    firstSeq: number | null;
    lastSeq: number | null;
    /** the agent's last metrics seq (its state.db) when the soak ended */
    produced: number | null;
    /** seqs from the first received to the last produced that never arrived (dropped, or still queued) */
    lost: number;
    /** of those, still in the agent's outbox at the end (late, not gone) */
    stillQueued: number | null;
    /** rows the agent's outbox bound dropped (any stream) */
    outboxDropped: number | null;
    duplicates: number;
    delayP50S: number | null;
    delayP99S: number | null;
    delayMaxS: number | null;
  };
  flood: { sent: number; ratePerS: number; responses: number; events: number };
  rssMb: {
    agent: { start: number; end: number; max: number };
    dashboard: { start: number; end: number; max: number };
  };
  dashboard: { devices: number | null; received: number | null; dropped: number | null };
}
