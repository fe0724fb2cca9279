// Fallback Fitter used when src/fit/index.ts does not export fitModel (or config says
// 'reference-only'): it measures the original model only and returns a one-entry frontier.
// That is honest: the entry is the uncompressed level, fidelity 1 by definition.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { FitResult, Fitter, FrontierEntry } from '../fit/types.js';
import { LatencyProbe } from './latency.js';

export const referenceOnlyFitter: Fitter = async (req, onProgress) => {
  onProgress({ fraction: 0, stage: 'measure-reference', message: 'measuring the original model' });
  const probe = new LatencyProbe();
  try {
    await probe.load(req.modelPath, req.shapes, req.threads ?? null);
    const lat = await probe.measure(10);
    const bytes = readFileSync(req.modelPath);
    const b = req.budgets;
    const latencyBudget = b.latencyMs ?? (b.latencyFactor !== undefined ? b.latencyFactor * lat.p50 : undefined);
    const entry: FrontierEntry = {
      id: 'reference',
      config: { structured: 0, unstructured: 0, quant: 'none', threads: req.threads ?? 1 },
      modelPath: req.modelPath,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      sizeBytes: statSync(req.modelPath).size,
      latencyP50Ms: lat.p50,
      latencyP95Ms: lat.p95,
      modelRssMb: probe.modelRssMb,
      fidelity: 1,
      meets: {
        latency: latencyBudget === undefined || lat.p50 <= latencyBudget,
        ram: b.ramMb === undefined || probe.modelRssMb <= b.ramMb,
        fidelity: true,
      },
    };
    onProgress({ fraction: 1, stage: 'done' });
    const result: FitResult = { chosenId: entry.id, frontier: [entry], referenceLatencyP50Ms: lat.p50, fitter: 'reference-only' };
    const short: NonNullable<FitResult['shortfall']> = {};
    if (!entry.meets.latency && latencyBudget !== undefined) short.latencyMs = round(lat.p50 - latencyBudget);
    if (!entry.meets.ram && b.ramMb !== undefined) short.ramMb = round(probe.modelRssMb - b.ramMb);
    if (Object.keys(short).length) result.shortfall = short;
    return result;
  } finally {
    await probe.close();
  }
};

const round = (x: number): number => Math.round(x * 1000) / 1000;

/** The real fitter when src/fit/index.ts exports fitModel, else the reference-only fallback. */
export async function resolveFitter(mode: 'auto' | 'reference-only', hardwareId: string): Promise<{ fitter: Fitter; name: string }> {
  if (mode === 'auto') {
    try {
      const mod = (await import('../fit/index.js')) as { fitModel?: unknown };
      if (typeof mod.fitModel === 'function') {
        const fitModel = mod.fitModel as (r: unknown, p: unknown, o: unknown) => Promise<FitResult>;
        return {
          name: 'fitModel',
          fitter: async (req, onProgress) => ({ ...(await fitModel(req, onProgress, { hardwareId })), fitter: 'fitModel' }),
        };
      }
    } catch {
      // the fitter module failed to load (not built yet): fall through to the honest fallback
    }
  }
  return { fitter: referenceOnlyFitter, name: 'reference-only' };
}
