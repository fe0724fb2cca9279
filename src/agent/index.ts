export { Agent, DEFAULT_MODEL, DEFAULT_SHAPES, AGENT_VERSION, type AgentDeps } from './agent.js';
export { ModelStore, sha256Hex, type ModelVersion } from './model-store.js';
export { Adaptation } from './adaptation.js';
export { referenceOnlyFitter, resolveFitter } from './reference-fitter.js';
export { defaultDeviceId } from './device.js';
export { sdReady, sdStopping } from './sd-notify.js';
export { type LatencySource } from './prober.js';
