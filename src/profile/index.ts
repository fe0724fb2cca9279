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
  type LatencyBudget,
  type Int8Settings,
} from './profiles.js';
export { runBench, type BenchOptions } from './bench.js';
export { interpretSources, type Interpreted } from './interpret.js';
export { readLiveSources, readSourcesFromDir, type RawSources } from './sources.js';
export type * from './types.js';
