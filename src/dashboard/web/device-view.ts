/// <reference lib="dom" />
// The device page: summary, frontier plot, metric history, event log, and actions whose
// responses arrive over the live stream and are matched by transaction id.
import type {
  ActionView,
  DeviceDetail,
  DeviceEvent,
  DeviceSummary,
  FrontierPoint,
  MeetKey,
  MetricPoint,
  ServedSummary,
  StreamMessage,
} from '../model.js';
import type { Judged, JudgedPair } from '../../fidelity/task-compare.js';
import type { TrainingStatus } from '../../telemetry/payloads.js';
import { frontierPlot, lineChart, lossChart, rebaseFrontier } from './charts.js';
import { latencyTitle, levelText } from './fleet-view.js';
import { actionsOff, ago, clock, esc, fmt, getJson, postJson } from './util.js';

const HISTORY_MAX = 3600;

/** "boxF1 0.9967 → 0.9967 (maskIoU 0.8800 → 0.9000)": the judge's scores, its finer figure when it has one. */
function judgedScores(j: Judged): string {
  const pair = (x: JudgedPair): string => `${esc(x.name)} ${esc(x.before.toFixed(4))} → ${esc(x.after.toFixed(4))}`;
  return pair(j) + (j.finer ? ` (${pair(j.finer)})` : '');
}

/** '; the stem (12 layers, before stride 16) stayed frozen' when the training left it so, else ''. */
const frozenText = (f: { layers: number; stride: number } | undefined): string =>
  f ? `; the stem (${esc(String(f.layers))} layers, before stride ${esc(String(f.stride))}) stayed frozen` : '';

/** A training the deployed model is not: it lost its fit, or won and the box stepped away from it. */
function trainedLine(r: TrainingStatus): string {
  const what = r.kind === 'qat' ? 'Quantization-aware training' : 'Distillation from the original';
  const score = r.judged
    ? `${judgedScores(r.judged)} on held-out images`
    : `held-out loss ${esc(r.heldOutBefore.toPrecision(3))} → ${esc(r.heldOutAfter.toPrecision(3))}`;
  return (
    `<p id="training-${r.won ? 'won' : 'rejected'}">${esc(what)} ran on this box (fit ${r.fitId}, ${esc(r.candidateId)}): ${r.steps} steps in ` +
    `${esc(fmt(r.seconds / 60, 1))} of ${esc(fmt(r.minutes, 1))} min${frozenText(r.frozen)}; ${score}, fidelity ${esc(r.fidelity.toFixed(4))}. ` +
    (r.won
      ? 'It won its fit and was deployed; the box has stepped to another level since.</p>'
      : "It did not beat the fit's untrained choice; nothing was redeployed.</p>")
  );
}

/**
 * The running training fit's latest progress ('step 263, loss 0.00487, 82 of 720 s'), or null when
 * no training runs: the agent's second fit trains on the box and reports every 30 s.
 */
export function trainingNow(s: DeviceSummary, events: readonly DeviceEvent[] = []): string | null {
  const last = events.find((e) => e.type === 'fit-progress' || e.type === 'fit-started' || e.type === 'fit-done');
  if (!s.fit.running || last?.type !== 'fit-progress' || !last.detail.startsWith('training')) return null;
  // 'training 86%, about 638 s left: step 263, ...' (the time left since the fraction follows the training's clock)
  return last.detail.replace(/^training \d+%(, about \d+ s left)?: /, '');
}

/** A finite number ≥ 0 from an event's data (a device's payload: checked, never trusted), else undefined. */
const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);

/**
 * The running training's loss curve so far, from its progress events (newest first, back to the
 * fit's start): one batch-loss point per report and the held-out losses at the steps they were
 * measured. Empty when no training runs or its reports carry no points (an older agent).
 */
export function trainingCurve(events: readonly DeviceEvent[]): { step: number; loss: number; heldOut?: number }[] {
  const batch = new Map<number, number>();
  const held = new Map<number, number>();
  for (const e of events) {
    if (e.type === 'fit-started' || e.type === 'fit-done' || e.type === 'fit-failed') break;
    if (e.type !== 'fit-progress') continue;
    const t = (e.payload as { data?: { train?: { step?: unknown; loss?: unknown; heldOut?: { step?: unknown; loss?: unknown } } } })?.data
      ?.train;
    const step = count(t?.step);
    const loss = count(t?.loss);
    if (step === undefined || loss === undefined) continue;
    if (!batch.has(step)) batch.set(step, loss);
    const hs = count(t?.heldOut?.step);
    const hl = count(t?.heldOut?.loss);
    if (hs !== undefined && hl !== undefined && !held.has(hs)) held.set(hs, hl);
  }
  // a held-out point sits at its own step; the batch loss there is the nearest report's
  const steps = [...new Set([...batch.keys(), ...held.keys()])].sort((a, b) => a - b);
  let last: number | undefined;
  return steps.flatMap((step) => {
    last = batch.get(step) ?? last ?? [...batch.values()][batch.size - 1];
    if (last === undefined) return [];
    const h = held.get(step);
    return [{ step, loss: last, ...(h !== undefined ? { heldOut: h } : {}) }];
  });
}

/** What the fit achieved, in words: running, every budget met, or which cannot be met and by how much. */
function fitLine(s: DeviceSummary, events: readonly DeviceEvent[] = []): string {
  const f = s.fit;
  if (f.unmet) return f.unmet;
  const now = trainingNow(s, events);
  if (now !== null) return `training on the box (${now})${s.modelId ? `; ${s.modelId} is served meanwhile` : ''}`;
  if (f.running) return `fitting in the background${s.modelId ? `; ${s.modelId} is served meanwhile` : ''}`;
  return s.level !== null ? 'every budget met' : '–';
}

/** '(served)' or '(probe)': whether the latency shown is what the box's applications got; with
 * why it judges no budget when the box's own fit was using the cores while it was taken. */
export function sourceText(v: ServedSummary | null | undefined, busy?: string | null): string {
  const src = v?.source === 'served' ? 'served' : v?.source === 'probe' ? 'probe' : '';
  if (busy) return `(${src ? `${src}, ` : ''}taken while ${busy}: judges no budget)`;
  return src ? `(${src})` : '';
}

/** The local endpoint, what it served (req/s, run and total p50/p95) and, plainly, whether capture is on. HTML. */
export function servedLine(v: ServedSummary | null | undefined): string {
  if (!v) return '<span class="muted">– (this agent does not serve)</span>';
  const capture = v.capture
    ? ' · <span class="b unmet" id="capture">input capture ON: samples of real inputs are kept on the box</span>'
    : ' · <span class="muted" id="capture">input capture off</span>';
  if (!v.on) return `<span class="muted">serving off</span>${capture}`;
  const where = [v.url, v.socket].filter(Boolean).join(' · ');
  const rate = v.requestsPerS ? `${fmt(v.requestsPerS, 1)} req/s` : 'idle (latency from probes)';
  const lat =
    v.runP50Ms !== null
      ? ` · run p50/p95 ${fmt(v.runP50Ms)} / ${fmt(v.runP95Ms)} ms · request p50/p95 ${fmt(v.totalP50Ms)} / ${fmt(v.totalP95Ms)} ms`
      : '';
  return `${esc(rate)}${esc(lat)} <span class="muted">on ${esc(where)}</span>${capture}`;
}

/** ' · Raspberry Pi 4 Model B Rev 1.4, arm64' from the hardware facts of a profile payload. */
function hardwareLine(profile: unknown): string {
  const hw = (profile as { hardware?: Record<string, unknown> } | null)?.hardware;
  if (!hw) return '';
  const board = hw.board as { model?: unknown } | undefined;
  const bits = [typeof board?.model === 'string' ? board.model : null, typeof hw.arch === 'string' ? hw.arch : null].filter(Boolean);
  return bits.length ? ` · ${bits.join(', ')}` : '';
}

/**
 * Who may change the device, from its status payload's `control` (issue 20), in words. HTML. An
 * agent before issue 20 sends none: it obeyed anonymous commands, which is said plainly too.
 */
export function controlLine(status: unknown): string {
  const c = (status as { control?: unknown } | null)?.control;
  if (c === 'operator-key') return '<span class="b met" id="control">operator key: only signed commands are obeyed</span>';
  if (c === 'hmac-legacy')
    return '<span class="b unmet" id="control">legacy shared secret (HMAC): anyone holding it can command every device</span>';
  if (c === 'read-only')
    return '<span class="muted" id="control">read-only: no operator key is pinned, actions are refused (README Security)</span>';
  return '<span class="b unmet" id="control">unknown (agent before issue 20: commands may be unsigned)</span>';
}

/**
 * The frontier held is not the device's current one: a later fit replaced it (the deployed model
 * is not on it, or the metrics count another number of levels). The page holds a frontier from
 * its last get-frontier answer, which a training fit's hot-swap makes stale.
 */
export function frontierStale(s: DeviceSummary, frontier: readonly FrontierPoint[]): boolean {
  if (!frontier.length) return true;
  if (s.levels !== null && s.levels > 0 && s.levels !== frontier.length) return true;
  return s.level !== null && s.modelId !== null && !frontier.some((p) => p.id === s.modelId);
}

export class DeviceView {
  private d: DeviceDetail | null = null;
  /** What the page last asked a frontier for (deployed model and level count): asked once each. */
  private frontierAsked: string | null = null;
  /** stream messages that arrive before the detail has loaded */
  private early: StreamMessage[] = [];
  private chartTimer: ReturnType<typeof setTimeout> | null = null;
  private tick: ReturnType<typeof setInterval>;
  private gone = false;
  private readonly actions = new Map<string, ActionView>();

  constructor(
    private readonly root: HTMLElement,
    private readonly id: string,
  ) {
    root.innerHTML = `<p class="muted pad">Loading ${esc(id)}…</p>`;
    getJson<DeviceDetail>(`/api/devices/${encodeURIComponent(id)}`)
      .then((d) => {
        if (!this.gone) this.load(d);
      })
      .catch((e: Error) => {
        if (!this.gone) root.innerHTML = `<p class="pad">Cannot load ${esc(id)}: ${esc(e.message)}. <a href="#/">Back to the fleet</a></p>`;
      });
    this.tick = setInterval(() => this.renderHeader(), 1000);
  }

  private load(d: DeviceDetail): void {
    this.d = d;
    for (const a of d.actions) this.actions.set(a.tx, a);
    this.root.innerHTML = `
      <div class="dev">
        <div class="card wide" id="hdr"></div>
        <div class="card"><h2>Measured frontier</h2><div class="frontier" id="frontier"></div></div>
        <div class="card"><h2>Training on this box</h2><div class="chart" id="training"></div></div>
        <div class="card actions"><h2>Actions</h2>
          <form id="budget-form" novalidate>
            <label>Latency ≤ ms<input name="latencyMs" type="number" step="any" min="0"></label>
            <label>RAM ≤ MB<input name="ramMb" type="number" step="any" min="0"></label>
            <label>Fidelity ≥<input name="minFidelity" type="number" step="any" min="0" max="1"></label>
            <label>Size (gzip) ≤ MB<input name="sizeMb" type="number" step="any" min="0"></label>
            <button type="submit" id="act-set-budget">Set budget</button>
          </form>
          <div class="buttons">
            <button id="act-fit" data-verb="fit">Re-fit</button>
            <button id="act-rollback" data-verb="rollback">Roll back</button>
            <button id="act-ping" data-verb="ping">Ping</button>
            <button id="act-get-frontier" data-verb="get-frontier">Refresh frontier</button>
          </div>
          <div class="formerr" id="formerr"></div>
          <div class="actionlog" id="actionlog"></div>
        </div>
        <div class="card wide"><h2>Metric history</h2><div class="charts" id="charts"></div></div>
        <div class="card wide"><h2>Events</h2><div class="events"><table><thead><tr><th>time</th><th>event</th><th>detail</th></tr></thead><tbody id="events"></tbody></table></div></div>
      </div>`;
    const form = this.root.querySelector('#budget-form') as HTMLFormElement;
    const b = d.summary.budgets;
    // a relative budget (0.6x) arrives as its absolute equivalent (88.6811999 ms): three
    // significant digits read as a budget and keep sub-millisecond ones (0.0412 ms) intact
    (form.elements.namedItem('latencyMs') as HTMLInputElement).value =
      b.latencyMs !== undefined ? String(Number(b.latencyMs.toPrecision(3))) : '';
    (form.elements.namedItem('ramMb') as HTMLInputElement).value = b.ramMb !== undefined ? String(b.ramMb) : '';
    (form.elements.namedItem('minFidelity') as HTMLInputElement).value = b.minFidelity !== undefined ? String(b.minFidelity) : '';
    (form.elements.namedItem('sizeMb') as HTMLInputElement).value = b.sizeMb !== undefined ? String(b.sizeMb) : '';
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body: Record<string, number> = {};
      for (const k of ['latencyMs', 'ramMb', 'minFidelity', 'sizeMb']) {
        const v = (form.elements.namedItem(k) as HTMLInputElement).value.trim();
        // a non-number goes as typed so the agent's schema names the field in its error
        if (v !== '') body[k] = Number.isFinite(Number(v)) ? Number(v) : (v as unknown as number);
      }
      this.send('set-budget', body);
    });
    this.root.querySelectorAll<HTMLButtonElement>('.buttons button').forEach((btn) => {
      btn.addEventListener('click', () => this.send(btn.dataset.verb!, {}));
    });
    const off = actionsOff();
    if (off !== null) {
      // a view-only dashboard: the controls stay visible but say why they do nothing
      this.root.querySelectorAll<HTMLInputElement | HTMLButtonElement>('.actions input, .actions button').forEach((el) => {
        el.disabled = true;
        el.title = off;
      });
      const note = document.createElement('p');
      note.className = 'muted';
      note.id = 'actions-off';
      note.textContent = off;
      this.root.querySelector('.actions h2')?.after(note);
    }
    this.renderHeader();
    this.renderFrontier();
    this.renderCharts();
    this.renderEvents();
    this.renderActions();
    for (const m of this.early) this.onMessage(m);
    this.early = [];
    this.refreshFrontier();
  }

  /** A page without the device's current frontier asks the device for it, once per deployed model and level count. */
  private refreshFrontier(): void {
    const d = this.d;
    if (!d || actionsOff() !== null || !d.summary.online || !frontierStale(d.summary, d.frontier)) return;
    const key = `${d.summary.modelId ?? ''}/${d.summary.levels ?? ''}`;
    if (this.frontierAsked === key) return;
    this.frontierAsked = key;
    this.send('get-frontier', {});
  }

  private send(verb: string, body: Record<string, unknown>): void {
    const err = this.root.querySelector('#formerr') as HTMLElement;
    err.textContent = '';
    postJson<{ action: ActionView }>(`/api/devices/${encodeURIComponent(this.id)}/actions/${verb}`, body)
      .then(({ action }) => {
        if (!this.actions.has(action.tx)) this.actions.set(action.tx, action);
        this.renderActions();
      })
      .catch((e: Error) => {
        err.textContent = e.message;
      });
  }

  onMessage(m: StreamMessage): void {
    if (!this.d) {
      this.early.push(m);
      return;
    }
    const d = this.d;
    switch (m.kind) {
      case 'fleet': {
        const s = m.devices.find((x: DeviceSummary) => x.id === this.id);
        if (s) {
          const moved = s.level !== d.summary.level || JSON.stringify(s.budgets) !== JSON.stringify(d.summary.budgets);
          const trained = JSON.stringify(s.fit.training) !== JSON.stringify(d.summary.fit.training);
          d.summary = s;
          this.renderHeader();
          if (moved) this.renderFrontier();
          else if (trained) this.renderTraining(d.frontier.find((p) => p.level === s.level));
          this.refreshFrontier();
        }
        break;
      }
      case 'metrics': {
        if (m.device !== this.id) return;
        const lastTs = d.history.length ? d.history[d.history.length - 1]!.ts : -Infinity;
        for (const p of m.points) if (p.ts > lastTs) d.history.push(p);
        if (d.history.length > HISTORY_MAX) d.history.splice(0, d.history.length - HISTORY_MAX);
        // charts redraw at most once a second: history charts need no 4 Hz refresh
        if (!this.chartTimer)
          this.chartTimer = setTimeout(() => {
            this.chartTimer = null;
            this.renderCharts();
          }, 1000);
        break;
      }
      case 'event':
        if (m.device !== this.id) return;
        d.events.unshift(...[...m.events].reverse());
        d.events.splice(200);
        this.renderEvents();
        // a training fit's progress (or its start or end) changes the fit line and the training panel
        if (m.events.some((e: DeviceEvent) => e.type.startsWith('fit-'))) {
          this.renderHeader();
          this.renderTraining(d.frontier.find((p) => p.level === d.summary.level));
        }
        break;
      case 'action': {
        if (m.device !== this.id) return;
        // never replace an answer with the pending copy of the same request
        const had = this.actions.get(m.action.tx);
        if (had && had.response !== null && m.action.response === null) return;
        this.actions.set(m.action.tx, m.action);
        this.renderActions();
        break;
      }
      case 'frontier':
        if (m.device !== this.id) return;
        d.frontier = m.frontier;
        this.renderFrontier();
        this.renderHeader(); // the deployed level's label comes from the frontier
        break;
    }
  }

  private renderHeader(): void {
    const d = this.d;
    const el = this.root.querySelector('#hdr');
    if (!d || !el) return;
    const s = d.summary;
    const l = s.last;
    const f = s.fit;
    const met = (k: MeetKey): string =>
      s.met[k] === false ? ' <span class="b unmet">✗ unmet</span>' : s.met[k] === true ? ' <span class="b met">✓ met</span>' : '';
    const source = `<span class="muted" id="lat-source">${esc(sourceText(s.served, s.latencyBusy))}</span>`;
    const state = `<span class="state ${s.online ? 'on' : 'off'}" id="dev-state">${s.online ? 'online' : 'offline'}</span>`;
    el.innerHTML = `
      <div class="title"><h1>${esc(s.id)}</h1>${state}<span class="muted">last seen ${esc(ago(s.lastSeen))}</span></div>
      <dl class="kv">
        <dt>Board profile</dt><dd>${esc(s.board ?? '–')}${esc(hardwareLine(this.d?.profile))}</dd>
        <dt>Model @ level</dt><dd>${esc(s.modelId ?? '–')} <span class="lvl">@${esc(levelText(s) || '–')}</span>${esc(this.levelLabel())}</dd>
        <dt>Latency p50 / p95</dt><dd>${esc(fmt(l?.latencyMs))} / ${esc(fmt(l?.latencyP95Ms))} ms ${source} · <span id="lat-budget">${esc(latencyTitle(s))}</span>${met('latency')}</dd>
        <dt>Served</dt><dd id="served">${servedLine(s.served)}</dd>
        <dt>Control</dt><dd>${controlLine(d.status)}</dd>
        <dt>Model RAM</dt><dd>${esc(fmt(l?.ramMb, 0))} MB · budget ≤ ${esc(fmt(s.budgets.ramMb, 0))} MB${met('ram')}</dd>
        <dt>Fidelity (${esc(f.metric)})</dt><dd>${esc(l?.fidelity?.toFixed(4) ?? '–')} · floor ${esc(f.metric)} ≥ ${esc(s.budgets.minFidelity ?? '–')}${met('fidelity')}</dd>
        <dt>Fit</dt><dd id="fit-state">${esc(fitLine(s, d.events))}</dd>
        <dt>Temperature / CPU</dt><dd>${esc(fmt(l?.tempC))} °C · load ${esc(fmt(l?.cpuLoad, 2))}</dd>
      </dl>`;
  }

  /** ' (int8-dynamic pruned 30% ch)' when the frontier says what the deployed level is. */
  private levelLabel(): string {
    const d = this.d;
    const p = d && d.summary.level !== null ? d.frontier.find((x) => x.level === d.summary.level) : undefined;
    return p ? ` (${p.label})` : '';
  }

  private renderFrontier(): void {
    const el = this.root.querySelector('#frontier');
    if (!el || !this.d) return;
    // the deployed level comes from live metrics: it moves on step-down/up without a new frontier
    const level = this.d.summary.level;
    const deployed = level !== null && this.d.frontier.some((p) => p.level === level);
    const marked = deployed ? this.d.frontier.map((p) => ({ ...p, chosen: p.level === level })) : this.d.frontier;
    const pts = rebaseFrontier(marked, this.d.summary.fit.originalMs);
    el.innerHTML = frontierPlot(pts, this.d.summary.budgets);
    this.renderTraining(pts.find((p) => p.chosen));
  }

  /** The deployed level's training curve, or why there is none. */
  private renderTraining(p: FrontierPoint | undefined): void {
    const el = this.root.querySelector('#training');
    if (!el) return;
    const t = p?.training;
    // a training fit running now comes first, whatever the deployed model is
    const nowText = this.d ? trainingNow(this.d.summary, this.d.events) : null;
    const live = nowText !== null && this.d ? trainingCurve(this.d.events) : [];
    const now =
      nowText !== null
        ? `<p id="training-now">Training on the box now: ${esc(nowText)}. The trained model is swapped in only when it measures better than the fit's untrained choice.</p>` +
          (live.length >= 2
            ? `<div id="training-live">${lossChart(live)}<p class="muted">so far, one point per report (every 30 s) · orange: held-out loss</p></div>`
            : '')
        : '';
    if (!t) {
      // a training the box does not serve (it lost, or was stepped away from) is shown with its scores
      const r = this.d?.summary.fit.training;
      const lost = r && !r.deployed ? trainedLine(r) : '';
      el.innerHTML =
        now +
        `<p class="muted" id="training-none">The deployed model was not trained on this box${p ? ` (${esc(p.label)})` : ''}. ` +
        (lost || now
          ? ''
          : 'After its first fit the agent trains the deployed model for <code>train.minutes</code> (default 12; 0: off) and swaps it in only when it measures better.') +
        '</p>' +
        lost;
      return;
    }
    const what = t.kind === 'qat' ? 'quantization-aware training' : 'distillation from the original';
    el.innerHTML =
      now +
      `<p id="training-line">${esc(p!.label)}: ${esc(what)}, ${t.steps} steps in ${esc(fmt(t.seconds / 60, 1))} of ${esc(fmt(t.minutes, 1))} min` +
      `${frozenText(t.frozen)}; ` +
      `held-out loss ${esc(t.heldOutBefore.toPrecision(3))} → ${esc(t.heldOutAfter.toPrecision(3))}` +
      `${t.judged ? `; ${judgedScores(t.judged)} on held-out images (it picked the weights kept)` : ''}</p>` +
      lossChart(t.curve, undefined, undefined, t.heldOutBefore) +
      `<p class="muted">thin: batch loss · orange: held-out loss</p>`;
  }

  private renderCharts(): void {
    const el = this.root.querySelector('#charts');
    if (!el || !this.d) return;
    const h = this.d.history;
    const b = this.d.summary.budgets;
    const ser = (f: (p: MetricPoint) => number | null): { t: number; v: number | null }[] => h.map((p) => ({ t: p.ts, v: f(p) }));
    const chart = (id: string, title: string, unit: string, last: number | null | undefined, body: string): string =>
      `<div class="chart" id="${id}"><div class="label"><span>${title}</span><span>${esc(fmt(last))} ${unit}</span></div>${body}</div>`;
    const last = h[h.length - 1];
    el.innerHTML =
      chart(
        'ch-lat',
        'Latency p50 / p95',
        'ms',
        last?.latencyMs,
        lineChart(
          [
            { values: ser((p) => p.latencyMs), color: 'var(--lat)', name: 'p50' },
            { values: ser((p) => p.latencyP95Ms), color: '#8b949e', name: 'p95' },
          ],
          { w: 560, h: 150, unit: 'ms', ...(b.latencyMs !== undefined ? { limit: b.latencyMs } : {}) },
        ),
      ) +
      chart(
        'ch-ram',
        'Model RAM',
        'MB',
        last?.ramMb,
        lineChart([{ values: ser((p) => p.ramMb), color: 'var(--ram)', name: 'RAM' }], {
          w: 560,
          h: 150,
          unit: 'MB',
          ...(b.ramMb !== undefined ? { limit: b.ramMb } : {}),
        }),
      ) +
      chart(
        'ch-temp',
        'Temperature',
        '°C',
        last?.tempC,
        lineChart([{ values: ser((p) => p.tempC), color: 'var(--temp)', name: 'temperature' }], { w: 560, h: 150, unit: '°C' }),
      ) +
      chart(
        'ch-cpu',
        'CPU load',
        '',
        last?.cpuLoad,
        lineChart([{ values: ser((p) => p.cpuLoad), color: 'var(--cpu)', name: 'CPU load' }], { w: 560, h: 150, unit: '' }),
      );
  }

  private renderEvents(): void {
    const el = this.root.querySelector('#events');
    if (!el || !this.d) return;
    el.innerHTML = this.d.events.length
      ? this.d.events
          .slice(0, 200)
          .map((e: DeviceEvent) => `<tr><td class="ts">${esc(clock(e.ts))}</td><td>${esc(e.type)}</td><td>${esc(e.detail)}</td></tr>`)
          .join('')
      : '<tr><td colspan="3" class="muted">no events yet</td></tr>';
  }

  private renderActions(): void {
    const el = this.root.querySelector('#actionlog');
    if (!el) return;
    const list = [...this.actions.values()].sort((a, b) => b.ts - a.ts).slice(0, 30);
    el.innerHTML = list
      .map((a) => {
        const st = a.response === null ? ['pending', 'waiting for device…'] : a.ok === false ? ['err', 'error'] : ['ok', 'ok'];
        const took = a.responseTs !== null ? ` in ${a.responseTs - a.ts} ms` : '';
        const when = `<span class="muted">${esc(clock(a.ts))}</span><code class="muted">${esc(a.tx.slice(0, 8))}</code>`;
        return `<div class="act" data-tx="${esc(a.tx)}" data-verb="${esc(a.verb)}" data-state="${st[0]}">
        <div class="head"><b>${esc(a.verb)}</b><span class="st ${st[0]}">${st[1]}${esc(took)}</span>${when}</div>
        <pre class="req">→ ${esc(JSON.stringify(a.request))}</pre>
        ${a.response !== null ? `<pre class="resp">← ${esc(JSON.stringify(a.response, null, 1))}</pre>` : ''}
      </div>`;
      })
      .join('');
  }

  destroy(): void {
    this.gone = true;
    clearInterval(this.tick);
    if (this.chartTimer) clearTimeout(this.chartTimer);
    this.root.innerHTML = '';
  }
}
