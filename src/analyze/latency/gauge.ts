// How loaded the box is right now, for the latency tables (issue 17). On a shared box (the edge
// agent's own work; here, other builds on 2 cores) the same model took 49 ms in one minute and
// 446 ms in another: units timed in a quiet minute and the model in a loud one give predictions
// below zero. A fixed small convolution timed just before each measurement says how much slower
// than at the start of the build the box is; every figure is divided by that factor, so the
// table is in one unit (the box as it was at the start) whatever happened during the build.
import type { InferenceSession } from 'onnxruntime-node';
import { serializeModel } from '../../onnx/index.js';
import { openSession } from '../../runtime/runner.js';
import { convModel } from './block.js';
import { quantile, type FeedBuffer } from './measure.js';

const SHAPE = [1, 64, 28, 28];

export class LoadGauge {
  private base = 0;
  private constructor(
    private readonly session: InferenceSession,
    private readonly feeds: FeedBuffer,
  ) {}

  static async open(threads: number, feeds: FeedBuffer): Promise<LoadGauge> {
    // idle threads sleep: the gauge's pool must not spin beside the session being timed
    const s = await openSession(serializeModel(convModel(SHAPE, [64, 64, 3, 3], 1, 3)), { threads, spinning: false });
    const g = new LoadGauge(s, feeds);
    g.base = await g.time(25);
    return g;
  }

  private async time(runs: number): Promise<number> {
    const f = { x: this.feeds.tensor(SHAPE) };
    await this.session.run(f);
    const ts: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await this.session.run(f);
      ts.push(performance.now() - t);
    }
    return quantile(ts, 0.25);
  }

  /** The box's slowdown now against the start of the build (1: as loaded as then), within [0.2, 10]. */
  async factor(): Promise<number> {
    if (!(this.base > 0)) return 1;
    return Math.min(10, Math.max(0.2, (await this.time(5)) / this.base));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
