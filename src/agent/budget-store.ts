// The budgets in force: the board profile's, the config file's, and the set-budget override
// persisted in the store (merged by mergeBudgets, later layers winning), and whether the user
// prefers the fidelity floor (the default) or latency (config `prefer`).
import type { Budgets } from '../fit/types.js';
import type { Prefer } from './floor.js';
import type { Store } from '../store/index.js';
import { mergeBudgets } from '../budgets/index.js';

export class BudgetStore {
  constructor(
    private readonly store: Store,
    private readonly configured: Budgets,
    private readonly profiled: () => Budgets | undefined,
    private readonly preferred: Prefer = 'fidelity',
  ) {}

  /** 'fidelity': nothing below budgets.minFidelity is deployed or stepped to; 'latency': the user trades it. */
  prefer(): Prefer {
    return this.preferred;
  }

  get(): Budgets {
    const override = this.store.getKv('budgets');
    return mergeBudgets(this.profiled(), this.configured, override ? (JSON.parse(override) as Budgets) : undefined);
  }

  /** Merge into the persisted override; returns the budgets now in force. */
  set(b: Budgets): Budgets {
    const prev = this.store.getKv('budgets');
    this.store.setKv('budgets', JSON.stringify(mergeBudgets(prev ? (JSON.parse(prev) as Budgets) : undefined, b)));
    return this.get();
  }
}
