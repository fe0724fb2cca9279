// What a candidate is, in the words the agent's serve stats, the dashboard and the report use:
// "fp32 folded", "fp32 pruned 19% latency", "int8-static pruned 40% ch QAT". One home, so the three
// agree. "pruned" says the figure is what was cut: "fp32 19% latency" read as a model running at 19 %.
import type { CandidateConfig } from './types.js';

/** What the structured fraction is a fraction of (issue 17): channels, MACs or the original's latency. */
export function structuredOf(c: Pick<CandidateConfig, 'structuredBy'>): 'ch' | 'MACs' | 'latency' {
  return c.structuredBy === 'macs' ? 'MACs' : c.structuredBy === 'latency' ? 'latency' : 'ch';
}

/** Precision, then pruning, then training; the file as shipped is plain "fp32". */
export function configLabel(c: CandidateConfig): string {
  const parts: string[] = [c.quant === 'none' ? 'fp32' : c.quant];
  // the original with only its exact folds (BatchNorm into Conv, constants): same outputs, fewer ops
  if (c.folded === true) parts.push('folded');
  if (c.structured > 0) parts.push(`pruned ${Math.round(c.structured * 100)}% ${structuredOf(c)}`);
  if (c.unstructured > 0) parts.push(`${Math.round(c.unstructured * 100)}% sparse`);
  // trained on the box: distilled from the original (float) or quantization-aware (int8)
  if (c.train) parts.push(c.quant === 'none' ? 'distilled' : 'QAT');
  return parts.join(' ');
}
