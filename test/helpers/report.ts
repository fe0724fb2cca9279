// The fit's HTML report of a search outcome, as tests that read it render it.
import { renderReport } from '../../src/fit/report.js';
import type { SearchOutcome } from '../../src/fit/search.js';

export function reportOf(out: SearchOutcome, minFidelity: number): string {
  return renderReport({
    model: 'm.onnx',
    budgets: { latencyMs: out.latencyBudgetMs, minFidelity },
    candidates: out.candidates,
    frontier: out.frontier,
    chosenId: out.chosen.id,
    feasible: out.feasible,
    hardware: {},
    profile: 'generic',
    notes: out.notes,
    elapsedMs: 1,
    referenceMs: out.reference.latencyP50Ms,
  });
}
