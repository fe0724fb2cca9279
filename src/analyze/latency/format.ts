// The human report of `edgefit latency`: the block and its staircase, the layers that cost the
// most, how long the tables took and whether they came from the cache.
import type { BlockEvidence, LatencyTables } from './types.js';

/** One staircase line: width:ms, the widths on the block marked with '*'. */
export function formatStaircase(e: BlockEvidence, block: number): string {
  return `  ${e.layer}\n    ${e.widths.map((w, i) => `${w}${w % block === 0 ? '*' : ''}:${e.ms[i]!.toFixed(3)}`).join(' ')}`;
}

export function formatLatencyTables(t: LatencyTables, o: { top?: number; cached?: boolean } = {}): string {
  const lines: string[] = [];
  const sum = t.layers.reduce((a, l) => a + l.fullMs, 0);
  lines.push(
    `model: ${t.modelMs.toFixed(2)} ms (lower quartile, ${t.key.threads} threads) at ${Object.entries(t.key.shapes)
      .map(([k, v]) => `${k}=${v.join('x')}`)
      .join(' ')}`,
  );
  lines.push(`hardware: ${t.key.hardware}`);
  lines.push(
    `tables: ${t.layers.length} weight layers, their units ${sum.toFixed(2)} ms in all; built in ${(t.buildMs / 1000).toFixed(1)} s` +
      (o.cached ? ' (read from the cache now)' : ''),
  );
  lines.push(
    `block: ${t.block} channels (${t.blockSource === 'measured' ? 'measured: widths off the block are slower than the next multiple' : 'from the CPU features: the staircase was not clear'})`,
  );
  for (const e of t.blockEvidence) lines.push(formatStaircase(e, t.block));
  const top = [...t.layers].sort((a, b) => b.fullMs - a.fullMs).slice(0, o.top ?? 10);
  if (top.length) {
    lines.push(`top ${top.length} layers by time (ms at full width; at the narrowest measured widths):`);
    const w = Math.max(...top.map((l) => l.node.length));
    for (const l of top) {
      const side = (ws: number[], ms: number[]) => (ws.length > 1 ? `${ws[0]}:${ms[0]!.toFixed(2)}` : '-');
      const shape = `${l.inChannels}->${l.outChannels}${l.depthwise ? ' dw' : ''}`;
      const share = ((l.fullMs / t.modelMs) * 100).toFixed(1);
      lines.push(
        `  ${l.node.padEnd(w)}  ${l.op.padEnd(6)} ${shape.padEnd(12)} ${l.fullMs.toFixed(3).padStart(8)}  ${share.padStart(5)}%` +
          `  in ${side(l.inWidths, l.inMs)}  out ${side(l.outWidths, l.outMs)}`,
      );
    }
  }
  return lines.join('\n');
}
