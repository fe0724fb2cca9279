// Public face of the hardware and board profiles, for the fitter, the agent and the CLI.
//   probeHardware({bench?})      -> HardwareProfile: CPU, features, memory, board, throttling, int8 flavour
//   loadProfiles(dir?)           -> BoardProfile[] validated against profiles/schema.json
//   selectProfile(hw, override?) -> SelectedProfile: the most specific matching board profile, 'auto' resolved
export { probeHardware, type ProbeOptions } from './probe.js';
export {
  loadProfiles,
  selectProfile,
  findProfile,
  defaultProfilesDir,
  parseLatency,
  ProfileError,
  type BoardProfile,
  type SelectedProfile,
  type Int8Settings,
} from './profiles.js';
import type { BenchOptions } from './bench.js';
import type { BenchResult } from './types.js';
export type { BenchOptions };
/** The onnxruntime micro-benchmark alone (onnxruntime is loaded on first use, not at import). */
export async function runBench(opts: BenchOptions = {}): Promise<BenchResult> {
  return (await import('./bench.js')).runBench(opts);
}
export { interpretSources, type Interpreted } from './interpret.js';
export { captureSources, FACT_FILES, readLiveSources, readSourcesFromDir, type RawSources, type ThermalZone } from './sources.js';
export type * from './types.js';
