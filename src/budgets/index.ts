// The one budgets module (issue 15): type, schema, profile conversion, layering, the latency
// statistic, and meets().
export {
  type Budgets,
  type ProfileBudgets,
  LATENCY_STATISTIC,
  budgetsSchema,
  BUDGET_MAX,
  checkBudgets,
  latencyOf,
  latencyOfRuns,
  rebasedLatency,
  parseLatency,
  profileBudgets,
  mergeBudgets,
  latencyBudgetMs,
} from './budgets.js';
export { BUDGET_KEYS, meets, type BudgetKey, type Measurement, type Shortfall, type Verdict } from './meets.js';
