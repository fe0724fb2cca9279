// Human-readable rendering of a hardware profile and the chosen board profile (edgefit profile).
import { LATENCY_STATISTIC } from '../budgets/index.js';
import type { SelectedProfile } from './profiles.js';
import { describeThrottling } from './throttle.js';
import type { CpuFeatures, HardwareProfile } from './types.js';

const FEATURE_LABELS: Array<[keyof Omit<CpuFeatures, 'raw'>, string]> = [
  ['neon', 'NEON'],
  ['dotProd', 'dot-product'],
  ['i8mm', 'i8mm'],
  ['sve', 'SVE'],
  ['fp16', 'fp16'],
  ['avx', 'AVX'],
  ['avx2', 'AVX2'],
  ['fma', 'FMA'],
  ['avx512', 'AVX-512'],
  ['avx512Vnni', 'AVX-512 VNNI'],
  ['avxVnni', 'AVX-VNNI'],
  ['amxInt8', 'AMX-INT8'],
];

export function featureList(f: CpuFeatures): string {
  const on = FEATURE_LABELS.filter(([k]) => f[k]).map(([, l]) => l);
  return on.length ? on.join(', ') : 'none of interest';
}

const orDash = (v: unknown): string => (v === null || v === undefined || v === '' ? '-' : String(v));

export function formatProfile(hw: HardwareProfile, sel: SelectedProfile): string {
  const L: string[] = [];
  const c = hw.cpu;
  L.push(
    `cpu        ${orDash(c.vendor)} ${orDash(c.brand)} (${hw.arch}), ${c.cores} logical / ${c.physicalCores} physical cores${c.coreNames.length ? `, ${c.coreNames.join(' + ')}` : ''}`,
  );
  L.push(
    `clock      ${c.speedMHz ? `${c.speedMHz} MHz` : '-'}${c.speedMaxMHz ? ` (max ${c.speedMaxMHz} MHz)` : ''}${c.governor ? `, governor ${c.governor}` : ''}`,
  );
  L.push(`features   ${featureList(c.features)}`);
  L.push(`memory     ${hw.memory.totalMb} MB total, ${hw.memory.availableMb} MB available, swap ${hw.memory.swapTotalMb} MB`);
  L.push(
    `load       ${hw.load.avg1 !== null ? hw.load.avg1.toFixed(2) : '-'} (1 min), ${orDash(hw.load.currentPct)}% now; temperature ${hw.temperature.mainC !== null ? `${hw.temperature.mainC} C` : '-'}`,
  );
  const b = hw.board;
  const extra = [
    b.piRevision
      ? `rev ${b.piRevision.code}: ${b.piRevision.type ?? '?'} ${b.piRevision.memoryMb ?? '?'} MB ${b.piRevision.soc ?? ''}`.trim()
      : '',
    b.l4t ? `L4T ${b.l4t.version}${b.l4t.jetpack ? ` (JetPack ${b.l4t.jetpack})` : ''}` : '',
  ].filter(Boolean);
  L.push(`board      ${b.model ?? 'unknown (no device-tree model)'}${extra.length ? `; ${extra.join('; ')}` : ''}`);
  if (hw.throttling) L.push(`throttling 0x${hw.throttling.raw.toString(16)}: ${describeThrottling(hw.throttling) || 'none'}`);
  const u = hw.userland;
  L.push(
    `userland   ${u.is64 ? '64-bit' : '32-bit'} (process ${u.processBits}-bit, ELF ${orDash(u.elfBits)}, LONG_BIT ${orDash(u.longBit)}, kernel ${orDash(u.machine)})`,
  );
  const q = hw.int8;
  L.push(
    `int8       ${q.activation} activations x ${q.weight} weights${q.perChannel ? ', per-channel' : ''}${q.reduceRange ? ', reduce-range' : ''}; worth it: ${q.benefit} (${q.reason})`,
  );
  if (hw.bench) {
    const x = hw.bench;
    L.push(`bench      ${x.threads} threads, ${x.elapsedMs} ms`);
    for (const [name, k] of [
      ['gemm', x.gemm],
      ['conv', x.conv],
    ] as const) {
      L.push(
        `  ${name.padEnd(5)} ${k.shape}: fp32 ${k.fp32Gops} GOPS; int8 u8 ${k.int8.u8.gops} GOPS (${k.int8.u8.speedup}x), s8 ${k.int8.s8.gops} GOPS (${k.int8.s8.speedup}x)`,
      );
    }
    L.push(`  int8 best ${x.fastestInt8Activation} activations, ${x.int8Speedup}x over fp32; memory copy ${x.memoryGBps} GB/s`);
  }
  const p = sel.profile;
  const bud = sel.budgets;
  const lat = bud.latencyMs !== undefined ? `${bud.latencyMs} ms` : `${bud.latencyFactor}x of baseline`;
  L.push('');
  L.push(
    `profile    ${p.name} (${sel.source === 'override' ? 'chosen with --profile' : `matched by ${sel.matchedBy.join(' + ')}`}) ${p.path}`,
  );
  L.push(`budgets    latency ${lat} (${LATENCY_STATISTIC}), RAM ${bud.ramMb} MB, fidelity >= ${bud.minFidelity}`);
  L.push(`threads    ${sel.threads}${p.threads === 'auto' ? ' (auto)' : ''}`);
  L.push(
    `int8       ${sel.int8.activation} x ${sel.int8.weight}${sel.int8.perChannel ? ', per-channel' : ''}${sel.int8.reduceRange ? ', reduce-range' : ''} (${sel.int8.source})`,
  );
  for (const n of p.notes ?? []) L.push(`note       ${n}`);
  for (const w of hw.warnings) L.push(`warning    ${w}`);
  return `${L.join('\n')}\n`;
}
