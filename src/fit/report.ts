// Self-contained HTML report of a fit: latency-vs-fidelity plot (all candidates, the frontier,
// budget lines, the chosen point), the candidates table and the hardware profile. No external
// assets: the file opens offline on any machine.
import { LATENCY_STATISTIC, rebasedLatency } from '../budgets/index.js';
import { describeJudged } from '../fidelity/task-compare.js';
import { frozenNote } from '../passes/train/freeze.js';
import type { FrontierEntry } from './types.js';
import { structuredOf } from './label.js';

export interface ReportInput {
  model: string;
  budgets: { latencyMs: number | null; ramMb?: number; minFidelity?: number };
  candidates: FrontierEntry[];
  frontier: FrontierEntry[];
  chosenId: string;
  feasible: boolean;
  hardware: unknown;
  profile: string;
  notes: string[];
  elapsedMs: number;
  /** The original's p50 when the fit timed it first: candidates are placed at their ratio to it. */
  referenceMs?: number;
}

/**
 * Where a candidate sits on the plot and in the table's order: its latency re-based on the fit's
 * reference, as the fit judged it (search.ts latencyAt).
 */
const placed = (r: ReportInput, c: FrontierEntry): number => rebasedLatency(c, r.referenceMs);
const timesOriginal = (c: FrontierEntry): string => (c.latencyRatio !== undefined ? ` (${c.latencyRatio.toFixed(2)}x the original)` : '');

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

// inline so the report stays one self-contained file
const STYLE =
  'body{font:14px system-ui,sans-serif;margin:24px;color:#222}' +
  'table{border-collapse:collapse}' +
  'td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}' +
  'th{background:#f3f3f3}' +
  'tr.chosen{background:#e8f6e8;font-weight:600}' +
  'td:first-child{text-align:left;font-family:monospace}' +
  'pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:320px}' +
  '.bad{color:#b00}';

// the candidates table's columns; renderReport's cells follow this order
const HEADERS = [
  'id',
  'structured',
  'unstructured',
  'quant',
  'threads',
  'p50 ms',
  'p95 ms',
  'x original',
  'model RAM MB',
  'fidelity',
  'size MB',
  'gzip MB',
  'frontier',
  'meets budgets',
] as const;

function plot(r: ReportInput): string {
  const W = 640,
    H = 380,
    L = 60,
    R = 20,
    T = 20,
    B = 45;
  const xs = r.candidates.map((c) => placed(r, c)).concat(r.budgets.latencyMs ? [r.budgets.latencyMs] : []);
  const ys = r.candidates.map((c) => c.fidelity).concat(r.budgets.minFidelity !== undefined ? [r.budgets.minFidelity] : []);
  const x0 = 0,
    x1 = Math.max(...xs) * 1.1 || 1;
  const y0 = Math.max(0, Math.min(...ys) - 0.02),
    y1 = 1.005;
  const X = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ccc"/>`);
  for (let i = 0; i <= 5; i++) {
    const xv = x0 + ((x1 - x0) * i) / 5,
      yv = y0 + ((y1 - y0) * i) / 5;
    parts.push(`<text x="${X(xv)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${xv.toFixed(0)}</text>`);
    parts.push(`<text x="${L - 6}" y="${Y(yv) + 4}" font-size="11" text-anchor="end">${yv.toFixed(3)}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">latency ${LATENCY_STATISTIC} (ms)</text>`);
  parts.push(
    `<text x="14" y="${(T + H - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">fidelity</text>`,
  );
  if (r.budgets.latencyMs)
    parts.push(
      `<line x1="${X(r.budgets.latencyMs)}" x2="${X(r.budgets.latencyMs)}" y1="${T}" y2="${H - B}" stroke="#d33" stroke-dasharray="5,4"/>` +
        `<text x="${X(r.budgets.latencyMs) + 4}" y="${T + 12}" font-size="11" fill="#d33">latency budget</text>`,
    );
  if (r.budgets.minFidelity !== undefined)
    parts.push(
      `<line x1="${L}" x2="${W - R}" y1="${Y(r.budgets.minFidelity)}" y2="${Y(r.budgets.minFidelity)}" stroke="#d33" stroke-dasharray="5,4"/>` +
        `<text x="${W - R - 4}" y="${Y(r.budgets.minFidelity) - 4}" font-size="11" fill="#d33" text-anchor="end">fidelity floor</text>`,
    );
  const front = r.frontier.slice().sort((a, b) => placed(r, a) - placed(r, b));
  parts.push(
    `<polyline fill="none" stroke="#36c" stroke-width="1.5" points="${front.map((e) => `${X(placed(r, e))},${Y(e.fidelity)}`).join(' ')}"/>`,
  );
  for (const c of r.candidates) {
    const chosen = c.id === r.chosenId;
    const fill = chosen ? '#1a1' : c.config.quant === 'none' ? '#36c' : '#c80';
    parts.push(
      `<circle cx="${X(placed(r, c))}" cy="${Y(c.fidelity)}" r="${chosen ? 7 : 4}" fill="${fill}" stroke="#222" stroke-width="${chosen ? 2 : 0.5}">` +
        `<title>${esc(c.id)}: ${LATENCY_STATISTIC} ${placed(r, c).toFixed(1)} ms${timesOriginal(c)}, fidelity ${c.fidelity.toFixed(4)}</title></circle>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="latency versus fidelity">${parts.join('')}</svg>`;
}

/** A trained candidate's loss by step (issue 18): batch loss thin, held-out loss thick with dots. */
function lossPlot(c: FrontierEntry): string {
  const curve = c.training?.curve ?? [];
  if (curve.length < 2) return '';
  const W = 480,
    H = 180,
    M = 36;
  // the held-out loss of the starting weights is the held-out line's first point, at step 0 (the
  // curve keeps no point without a batch loss): the line then shows the drop training made
  const before = Number.isFinite(c.training!.heldOutBefore) ? c.training!.heldOutBefore : undefined;
  const s0 = before !== undefined ? 0 : curve[0]!.step;
  const s1 = Math.max(curve[curve.length - 1]!.step, s0 + 1);
  const vals = [
    ...(before !== undefined ? [before] : []),
    ...curve.flatMap((p) => (p.heldOut !== undefined ? [p.loss, p.heldOut] : [p.loss])),
  ];
  const hi = Math.max(...vals, 1e-12) * 1.05;
  const x = (s: number) => M + ((s - s0) / (s1 - s0)) * (W - 2 * M);
  const y = (v: number) => H - M + (-v / hi) * (H - 2 * M);
  const line = (pts: [number, number][]) => pts.map(([s, v], i) => `${i ? 'L' : 'M'}${x(s).toFixed(1)} ${y(v).toFixed(1)}`).join('');
  const held = [
    ...(before !== undefined ? [[0, before] as [number, number]] : []),
    ...curve.filter((p) => p.heldOut !== undefined).map((p) => [p.step, p.heldOut!] as [number, number]),
  ];
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="training loss of ${esc(c.id)}">` +
    `<line x1="${M}" y1="${H - M}" x2="${W - M}" y2="${H - M}" stroke="#999"/><line x1="${M}" y1="${M}" x2="${M}" y2="${H - M}" stroke="#999"/>` +
    `<text x="${M}" y="${H - M + 14}" font-size="11">step ${s0}</text><text x="${W - M}" y="${H - M + 14}" font-size="11" text-anchor="end">step ${s1}</text>` +
    `<text x="${M - 4}" y="${M + 4}" font-size="11" text-anchor="end">${hi.toPrecision(2)}</text>` +
    `<path d="${line(curve.map((p) => [p.step, p.loss]))}" fill="none" stroke="#8aa4c8"/>` +
    (held.length ? `<path d="${line(held)}" fill="none" stroke="#d9822b" stroke-width="2"/>` : '') +
    held.map(([s, v]) => `<circle cx="${x(s).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="#d9822b"/>`).join('') +
    '</svg>'
  );
}

function trainingSection(r: ReportInput): string {
  const trained = r.candidates.filter((c) => c.training);
  if (!trained.length) return '';
  const items = trained.map((c) => {
    const t = c.training!;
    const what = t.kind === 'qat' ? 'quantization-aware training' : 'distillation from the original';
    return (
      `<h3>${esc(c.id)}</h3><p>${what}: ${t.steps} steps in ${(t.seconds / 60).toFixed(1)} of ${t.minutes} min; ` +
      `held-out loss ${t.heldOutBefore.toPrecision(3)} &rarr; ${t.heldOutAfter.toPrecision(3)}` +
      `${t.judged ? `, ${describeJudged(t.judged, '&rarr;', esc)} (it picked the weights kept)` : ''}` +
      esc(frozenNote(t.frozen)) +
      `${t.improved ? '' : ' (no improvement: the untrained weights were kept)'}; fidelity ${c.fidelity.toFixed(4)}</p>` +
      lossPlot(c)
    );
  });
  return `<h2>Training on this box</h2>${items.join('\n')}<p><small>Thin: batch loss. Orange: held-out loss.</small></p>`;
}

const PLACED =
  "Each candidate is placed at its ratio to the original timed beside it (x original) times the original's first p50, as the fit judges it; the table's p50 is as timed.";

// issue 16: an infeasible fit keeps the fidelity floor (the original at worst), unless the user
// preferred latency, which the notes then say
const INFEASIBLE = 'No candidate meets every budget: the chosen one keeps the fidelity floor unless a note says otherwise.';

export function renderReport(r: ReportInput): string {
  const rows = r.candidates
    .slice()
    .sort((a, b) => placed(r, b) - placed(r, a))
    .map((c) => {
      // one cell per HEADERS column, in that order
      const cells = [
        `${esc(c.id)}${c.sameAs ? ` (the same model as ${esc(c.sameAs)})` : ''}`,
        `${(c.config.structured * 100).toFixed(1)}% ${structuredOf(c.config)}`,
        `${(c.config.unstructured * 100).toFixed(0)}%`,
        `${c.config.quant}${c.config.folded ? ' folded' : ''}${c.config.train ? (c.config.quant === 'none' ? ' distilled' : ' QAT') : ''}`,
        `${c.config.threads}`,
        c.latencyP50Ms.toFixed(1),
        c.latencyP95Ms.toFixed(1),
        c.latencyRatio !== undefined ? c.latencyRatio.toFixed(3) : '',
        c.modelRssMb.toFixed(1),
        c.fidelity.toFixed(4),
        (c.sizeBytes / 1e6).toFixed(2),
        c.compressedBytes !== undefined ? (c.compressedBytes / 1e6).toFixed(2) : '',
        r.frontier.some((f) => f.id === c.id) ? 'yes' : '',
        c.meets.latency && c.meets.ram && c.meets.fidelity && c.meets.size !== false ? 'yes' : 'no',
      ];
      return `<tr class="${c.id === r.chosenId ? 'chosen' : ''}">${cells.map((v) => `<td>${v}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const latencyBudget = r.budgets.latencyMs ? `${r.budgets.latencyMs.toFixed(1)} ms (${LATENCY_STATISTIC})` : 'none';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgefit fit report: ${esc(r.model)}</title>
<style>${STYLE}</style></head>
<body>
<h1>Fit report</h1>
<p>Model <code>${esc(r.model)}</code> on profile <b>${esc(r.profile)}</b>: ${r.candidates.length} candidates measured in ${(r.elapsedMs / 1000).toFixed(1)} s.
${r.feasible ? 'Chosen: the highest-fidelity candidate that meets every budget.' : `<span class="bad">${INFEASIBLE}</span>`}</p>
<p>Budgets: latency ${latencyBudget}, RAM ${r.budgets.ramMb ?? 'none'} MB, fidelity at least ${r.budgets.minFidelity ?? 'none'}.</p>
${plot(r)}
<p><small>Green: chosen. Blue: float. Orange: int8. Line: measured frontier. ${PLACED}</small></p>
<h2>Candidates</h2>
<table><tr>${HEADERS.map((h) => `<th>${h}</th>`).join('')}</tr>
${rows}</table>
${trainingSection(r)}
${r.notes.length ? `<h2>Notes</h2><ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<h2>Hardware</h2><pre>${esc(JSON.stringify(r.hardware, null, 2))}</pre>
</body></html>
`;
}
