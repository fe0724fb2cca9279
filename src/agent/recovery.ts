// Start-up recovery of a damaged state database (issue 20). store/recover.ts moves the damaged
// file aside and opens a fresh one; here the fresh one is rebuilt from what the agent keeps
// outside it: the model pointer (<state>/models/current.json) and the version files it names
// become the deployment rows, and fit ids continue above every fit folder and every fit the
// pointer names, so a new fit never reuses an old one's id or folder. The deployer then serves
// the deployed version exactly as after a normal restart. What only the database held (fit
// frontiers, metric history, the outbox, budgets set by command) is gone, and the event says so.
import { existsSync, readdirSync } from 'node:fs';
import type { Recovery, Store } from '../store/index.js';
import { ModelStore } from './model-store.js';

export interface Rebuilt {
  /** The deployed version the rebuilt database names as active (null: nothing was deployed). */
  current: string | null;
  previous: string | null;
  /** Fit ids continue above this. */
  fitIdsAbove: number;
}

/** Rebuild the deployment record of a fresh database from the model pointer and the fit folders. */
export function rebuildState(store: Store, modelsDir: string, fitsDir: string): Rebuilt {
  const models = new ModelStore(modelsDir);
  const cur = models.current();
  // a previous version whose file is gone or altered cannot be rolled back to: not recorded
  const prev = models.previous();
  const prevOk = prev && prev.version !== cur?.version && models.verify(prev) ? prev : undefined;
  if (prevOk) store.restoreDeployment(prevOk, 'superseded');
  // the current one is recorded whatever its file's state: the deployer checks it at start, as always
  if (cur) store.restoreDeployment(cur, 'active');
  const folders = existsSync(fitsDir)
    ? readdirSync(fitsDir)
        .filter((f) => /^\d+$/.test(f))
        .map(Number)
    : [];
  const fitIdsAbove = Math.max(0, cur?.fitId ?? 0, prev?.fitId ?? 0, ...folders);
  if (fitIdsAbove > 0) store.reserveFitIds(fitIdsAbove);
  return { current: cur?.version ?? null, previous: prevOk?.version ?? null, fitIdsAbove };
}

/** The event's one line (the reason cut short: an event message holds at most 1000 characters). */
export function recoveryMessage(r: Recovery, b: Rebuilt): string {
  return (
    `state database was unusable (${r.reason.slice(0, 300)}); moved it to ${r.movedTo} and rebuilt it from the model pointer: ` +
    `${b.current ? `${b.current} stays deployed` : 'nothing was deployed'}; fit history, metrics history, queued messages and budgets set by command were lost`
  );
}
