// Errors carry a stable code (for logs, MQTT error responses and tests) and an exit code
// (for the CLI): 2 = the caller used us wrongly, 1 = the model or data is bad, 3 = budgets unmet.
export const ERROR_CODES = {
  USAGE: { exit: 2 },
  FILE_NOT_FOUND: { exit: 1 },
  NOT_ONNX: { exit: 1 },
  CORRUPT_MODEL: { exit: 1 },
  UNSUPPORTED: { exit: 1 },
  INVALID_GRAPH: { exit: 1 },
  EXTERNAL_DATA: { exit: 1 },
  SHAPE: { exit: 1 },
  DATA: { exit: 1 },
  EVAL: { exit: 1 },
  OVER_BUDGET: { exit: 3 },
  CONFIG: { exit: 2 },
  INTEGRITY: { exit: 1 },
  /** The agent's bounded command queue is full (issue 20): try again later. */
  BUSY: { exit: 1 },
  INTERNAL: { exit: 1 },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * What the caller can supply to get past an error, in domain terms. Library messages never name a
 * CLI flag or a config key (the same error reaches `edgefit` users and agent users): the CLI maps a
 * remedy to its flag (src/cli/output.ts), the agent to its config key (src/config/remedy.ts).
 */
export const OPTIONS = [
  'shapes',
  'profile',
  'calib',
  'token',
  'latencyMs',
  'latency',
  'minFidelity',
  'ramMb',
  'sizeMb',
  'structured',
  'targetMacs',
  'targetLatency',
  'unstructured',
  'steps',
  'round',
  'task',
] as const;
export type OptionName = (typeof OPTIONS)[number];
export interface Remedy {
  /** The option that supplies or corrects what was wrong. */
  option: OptionName;
  /** For shapes: the input, and an example of dims ("1x3x224x224"). */
  input?: string;
  example?: string;
  /** For profile: the names to choose from. */
  choices?: readonly string[];
}

export class EdgefitError extends Error {
  readonly code: ErrorCode;
  readonly remedy?: Remedy;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; remedy?: Remedy }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'EdgefitError';
    this.code = code;
    if (options?.remedy) this.remedy = options.remedy;
  }
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isEdgefitError(e: unknown): e is EdgefitError {
  return e instanceof EdgefitError;
}

/** One line for a human: the message, without stack. */
export function oneLine(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}
