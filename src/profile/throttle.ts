// `vcgencmd get_throttled` prints 'throttled=0x50005'. Bits 0-3 are the current state,
// bits 16-19 the same conditions latched since boot (Raspberry Pi documentation, vcgencmd).
import type { ThrottleFlags, Throttling } from './types.js';

export const THROTTLE_BITS = {
  underVoltage: 0,
  freqCapped: 1,
  throttled: 2,
  softTempLimit: 3,
} as const;

const SINCE_BOOT_SHIFT = 16;

function flags(v: number, shift: number): ThrottleFlags {
  const bit = (b: number): boolean => ((v >>> (b + shift)) & 1) === 1;
  return {
    underVoltage: bit(THROTTLE_BITS.underVoltage),
    freqCapped: bit(THROTTLE_BITS.freqCapped),
    throttled: bit(THROTTLE_BITS.throttled),
    softTempLimit: bit(THROTTLE_BITS.softTempLimit),
  };
}

/** Decode the output of `vcgencmd get_throttled`; null when it is not that output. */
export function parseThrottled(text: string | null): Throttling | null {
  if (!text) return null;
  const m = /throttled=(0x[0-9a-f]+|\d+)/i.exec(text);
  if (!m) return null;
  const raw = Number(m[1]);
  if (!Number.isSafeInteger(raw) || raw < 0) return null;
  return { raw, now: flags(raw, 0), sinceBoot: flags(raw, SINCE_BOOT_SHIFT) };
}

/** Human summary ('under-voltage now; throttled since boot'), '' when all clear. */
export function describeThrottling(t: Throttling): string {
  const names: Record<keyof ThrottleFlags, string> = {
    underVoltage: 'under-voltage',
    freqCapped: 'frequency capped',
    throttled: 'throttled',
    softTempLimit: 'soft temperature limit',
  };
  const out: string[] = [];
  for (const k of Object.keys(names) as Array<keyof ThrottleFlags>) {
    if (t.now[k]) out.push(`${names[k]} now`);
    else if (t.sinceBoot[k]) out.push(`${names[k]} since boot`);
  }
  return out.join('; ');
}
