// Hardware profiling as a start-up step: profile the box, remember a changed hardware hash in the
// store, report it, and announce the facts on the bus ('profiled') for budgets, fits and metrics.
import { EdgefitError } from '../errors.js';
import type { Store } from '../store/index.js';
import type { AgentBus, Component } from './bus.js';
import { profileHardware, type HardwareFacts } from './hardware.js';

export class HardwareProfiler implements Component {
  private hw: HardwareFacts | undefined;

  constructor(
    private readonly d: { bus: AgentBus; store: Store; profile: string | null; factsDir?: string | null; log: (line: string) => void },
  ) {}

  /** Undefined until start() has profiled. */
  get facts(): HardwareFacts | undefined {
    return this.hw;
  }

  /** For parts that only run after start(). */
  required(): HardwareFacts {
    if (!this.hw) throw new EdgefitError('INTERNAL', 'hardware not profiled yet');
    return this.hw;
  }

  async start(): Promise<void> {
    const { bus, store } = this.d;
    const hw = await profileHardware(this.d.profile, this.d.log, this.d.factsDir ?? null);
    this.hw = hw;
    const last = store.lastHardware();
    if (!last || last.hash !== hw.hash) store.saveHardware(hw.hash, hw.profile, hw.hardware);
    const changed = last && last.hash !== hw.hash ? ' (hardware changed)' : '';
    bus.report('profiled', `hardware profile '${hw.profile}'${changed}`, { profile: hw.profile, hardwareHash: hw.hash });
    bus.emit('profiled', hw);
  }

  stop(): void {}
}
