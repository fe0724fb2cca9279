// The agent's state folder, in one place: every file the agent keeps lives under it.
//   <stateDir>/state.db        SQLite: fits, frontiers, deployments, outbox, metrics, kv
//   <stateDir>/models/         versioned deployed models and their pointer (model-store.ts)
//   <stateDir>/fits/<fitId>/   a fit's candidate models (the frontier's files)
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export interface StatePaths {
  root: string;
  db: string;
  models: string;
  fit(fitId: number): string;
}

/** Config first, then systemd's StateDirectory, then the XDG state home. */
export function resolveStateDir(configured: string | null | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(configured ?? env.STATE_DIRECTORY ?? join(env.XDG_STATE_HOME ?? join(homedir(), '.local/state'), 'edgefit'));
}

export function statePaths(root: string): StatePaths {
  return { root, db: join(root, 'state.db'), models: join(root, 'models'), fit: (fitId) => join(root, 'fits', String(fitId)) };
}
