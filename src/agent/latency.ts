// Live latency of a model in onnxruntime, in-process: load once per deployment, probe now and
// then. The RSS growth across session creation is the model's RAM cost as this box sees it.
import ort from 'onnxruntime-node';
import { feedsFor } from './inputs.js';

export interface LatencyStats { p50: number; p95: number; runs: number }

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export class LatencyProbe {
  private session: ort.InferenceSession | undefined;
  private feeds: Record<string, ort.Tensor> = {};
  modelRssMb = 0;

  async load(path: string, shapes: Record<string, number[]>, threads: number | null): Promise<void> {
    await this.close();
    const before = process.memoryUsage().rss;
    this.session = await ort.InferenceSession.create(path, {
      intraOpNumThreads: threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    this.feeds = feedsFor(this.session, shapes);
    await this.session.run(this.feeds); // warm-up allocates the arena: count it in the RSS cost
    this.modelRssMb = Math.max(0, Math.round(((process.memoryUsage().rss - before) / 1048576) * 10) / 10);
  }

  get loaded(): boolean {
    return this.session !== undefined;
  }

  async measure(runs: number): Promise<LatencyStats> {
    const s = this.session;
    if (!s) throw new Error('no model loaded');
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await s.run(this.feeds);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { p50: round(percentile(times, 0.5)), p95: round(percentile(times, 0.95)), runs };
  }

  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    this.feeds = {};
    if (s) await s.release();
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
