/// <reference lib="dom" />
// The fleet page: filters, sort, and a virtualised list. Only the rows in view (plus a few
// either side) exist in the DOM; scrolling moves a fixed pool of row elements, and a row is
// rewritten only when its device changed, so 1,000 devices updating every second cost about
// as much as the ~20 visible ones.
import type { DeviceSummary, MeetKey, StreamMessage } from '../model.js';
import { sparkline } from './charts.js';
import { esc, fmt } from './util.js';

const ROW_H = 44;
const OVERSCAN = 6;
const SORTS = {
  violation: 'budget violation (worst first)',
  id: 'device id',
  recent: 'last seen (newest first)',
  state: 'offline first',
} as const;
type SortKey = keyof typeof SORTS;
// the state filter's choices: value, label ('violating' reads better to a person as 'over budget')
const STATES = [
  ['all', 'all'],
  ['online', 'online'],
  ['offline', 'offline'],
  ['violating', 'over budget'],
] as const;
// the grid's header row; each row element fills one cell per column, in this order
const COLUMNS = ['Device', 'State', 'Board', 'Model @ level', 'Budgets', 'Latency p50', 'Model RAM', 'Temperature'] as const;

interface Entry {
  s: DeviceSummary;
  v: number;
}

export class FleetView {
  private readonly devices = new Map<string, Entry>();
  private order: Entry[] = [];
  private orderStale = true;
  private frame = 0;
  private readonly boards = new Set<string>();
  private readonly el: {
    viewport: HTMLElement;
    spacer: HTMLElement;
    state: HTMLSelectElement;
    board: HTMLSelectElement;
    sort: HTMLSelectElement;
    search: HTMLInputElement;
    counts: HTMLElement;
    empty: HTMLElement;
  };
  private readonly pool: { row: HTMLElement; key: string }[] = [];

  constructor(private readonly root: HTMLElement) {
    root.innerHTML = `
      <div class="toolbar">
        <label>State <select id="f-state">${STATES.map(([k, v]) => `<option value="${k}">${v}</option>`).join('')}</select></label>
        <label>Board <select id="f-board"><option value="">all boards</option></select></label>
        <label>Sort <select id="f-sort">${Object.entries(SORTS)
          .map(([k, v]) => `<option value="${k}">${v}</option>`)
          .join('')}</select></label>
        <label>Find <input id="f-search" type="search" placeholder="device id" size="14"></label>
        <span class="counts" id="counts"></span>
      </div>
      <div class="grid-head">${COLUMNS.map((c) => `<span>${c}</span>`).join('')}</div>
      <div class="viewport" id="viewport"><div class="spacer-rows" id="rows"></div><div class="empty" id="empty" hidden>No devices yet. Start an agent, or scripts/simulate-fleet.</div></div>`;
    const q = <T extends HTMLElement>(id: string): T => root.querySelector(`#${id}`) as T;
    this.el = {
      viewport: q('viewport'),
      spacer: q('rows'),
      state: q('f-state'),
      board: q('f-board'),
      sort: q('f-sort'),
      search: q('f-search'),
      counts: q('counts'),
      empty: q('empty'),
    };
    const again = (): void => {
      this.orderStale = true;
      this.schedule();
    };
    for (const s of [this.el.state, this.el.board, this.el.sort]) s.addEventListener('change', again);
    this.el.search.addEventListener('input', again);
    this.el.viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    window.addEventListener('resize', this.onResize);
  }

  private readonly onResize = (): void => this.schedule();

  onMessage(m: StreamMessage): void {
    if (m.kind !== 'fleet') return;
    for (const s of m.devices) {
      const e = this.devices.get(s.id);
      if (e) {
        e.s = s;
        e.v++;
      } else this.devices.set(s.id, { s, v: 0 });
      if (s.board && !this.boards.has(s.board)) {
        this.boards.add(s.board);
        const o = document.createElement('option');
        o.value = s.board;
        o.textContent = s.board;
        this.el.board.append(o);
      }
    }
    this.orderStale = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame)
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
  }

  private sortAndFilter(): void {
    const state = this.el.state.value;
    const board = this.el.board.value;
    const needle = this.el.search.value.trim().toLowerCase();
    const sort = this.el.sort.value as SortKey;
    const list: Entry[] = [];
    for (const e of this.devices.values()) {
      const s = e.s;
      if (state === 'online' && !s.online) continue;
      if (state === 'offline' && s.online) continue;
      if (state === 'violating' && s.violation <= 0) continue;
      if (board && s.board !== board) continue;
      if (needle && !s.id.toLowerCase().includes(needle)) continue;
      list.push(e);
    }
    const byId = (a: Entry, b: Entry): number => (a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0);
    const cmp: Record<SortKey, (a: Entry, b: Entry) => number> = {
      violation: (a, b) => b.s.violation - a.s.violation || byId(a, b),
      id: byId,
      recent: (a, b) => b.s.lastSeen - a.s.lastSeen || byId(a, b),
      state: (a, b) => Number(a.s.online) - Number(b.s.online) || byId(a, b),
    };
    list.sort(cmp[sort]);
    this.order = list;
    this.orderStale = false;
    let online = 0,
      violating = 0;
    for (const e of this.devices.values()) {
      if (e.s.online) online++;
      if (e.s.violation > 0) violating++;
    }
    this.el.counts.innerHTML = `<b>${this.devices.size}</b> devices · <b>${online}</b> online · <b>${violating}</b> over budget · showing <b>${list.length}</b>`;
  }

  private render(): void {
    if (this.orderStale) this.sortAndFilter();
    const n = this.order.length;
    this.el.spacer.style.height = `${n * ROW_H}px`;
    this.el.empty.hidden = this.devices.size > 0;
    const top = this.el.viewport.scrollTop;
    const height = this.el.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(n, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const need = last - first;
    while (this.pool.length < need) {
      const row = document.createElement('div');
      row.className = 'row';
      this.el.spacer.append(row);
      this.pool.push({ row, key: '' });
    }
    // row idx always lives in slot idx % pool size: rows that stay visible while scrolling keep
    // their element and are not rewritten; only the rows that scrolled in are
    const size = this.pool.length;
    const used = new Set<number>();
    for (let idx = first; idx < last; idx++) {
      const k = idx % size;
      used.add(k);
      const slot = this.pool[k]!;
      const e = this.order[idx]!;
      if (slot.row.hidden) slot.row.hidden = false;
      const y = `translateY(${idx * ROW_H}px)`;
      if (slot.row.style.transform !== y) slot.row.style.transform = y;
      const key = `${e.s.id}\u0000${e.v}`;
      if (slot.key !== key) {
        slot.key = key;
        slot.row.dataset.id = e.s.id;
        slot.row.dataset.online = e.s.online ? '1' : '0';
        slot.row.innerHTML = rowHtml(e.s);
      }
    }
    for (let k = 0; k < size; k++) {
      const slot = this.pool[k]!;
      if (!used.has(k) && !slot.row.hidden) {
        slot.row.hidden = true;
        slot.key = '';
      }
    }
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    window.removeEventListener('resize', this.onResize);
    this.root.innerHTML = '';
  }
}

function budgetHtml(s: DeviceSummary): string {
  const parts: string[] = [];
  const b = s.budgets;
  const cls = (k: MeetKey): string => (s.met[k] === false ? 'unmet' : s.met[k] === true ? 'met' : '');
  const mark = (k: MeetKey): string => (s.met[k] === false ? '✗' : s.met[k] === true ? '✓' : '');
  const f = s.fit;
  // a relative budget says what it is relative to: '≤0.5x=47ms' once the original is timed
  const lat =
    f.latencyFactor !== null
      ? `${f.latencyFactor}x${b.latencyMs !== undefined ? `=${fmt(b.latencyMs, 0)}ms` : ''}`
      : `${fmt(b.latencyMs, 0)}ms`;
  if (b.latencyMs !== undefined || f.latencyFactor !== null) {
    const busy = s.latencyBusy ? ` · last figure taken while ${s.latencyBusy}: judges no budget` : '';
    parts.push(`<span class="b ${cls('latency')}" title="${esc(latencyTitle(s) + busy)}">≤${esc(lat)}${mark('latency')}</span>`);
  }
  if (b.ramMb !== undefined) parts.push(`<span class="b ${cls('ram')}" title="RAM budget">≤${esc(fmt(b.ramMb, 0))}MB${mark('ram')}</span>`);
  if (b.minFidelity !== undefined)
    parts.push(
      `<span class="b ${cls('fidelity')}" title="fidelity floor (${esc(f.metric)})">${esc(f.metric)} ≥${esc(b.minFidelity)}${mark('fidelity')}</span>`,
    );
  if (s.violation > 0) parts.push(`<span class="viol" title="worst budget overshoot">+${esc(fmt(s.violation * 100, 0))}%</span>`);
  // budgets the fit could not meet: said in words, not a bare ✗
  if (f.unmet) parts.push(`<span class="shortfall" title="${esc(f.unmet)}">${esc(f.unmet)}</span>`);
  return parts.join('') || '<span class="muted">none</span>';
}

/** 'budget ≤ 0.5x of the original = 47.0 ms (original 94.0 ms p50)', or the absolute budget. */
export function latencyTitle(s: Pick<DeviceSummary, 'budgets' | 'fit'>): string {
  const f = s.fit;
  const ms = s.budgets.latencyMs;
  if (f.latencyFactor === null) return `budget ≤ ${fmt(ms)} ms`;
  return f.originalMs !== null && ms !== undefined
    ? `budget ≤ ${f.latencyFactor}x of the original = ${fmt(ms)} ms (original ${fmt(f.originalMs)} ms p50)`
    : `budget ≤ ${f.latencyFactor}x of the original (not timed yet)`;
}

/** Level as the agent counts it: 0 = the largest model of the stored frontier. */
export function levelText(s: Pick<DeviceSummary, 'level' | 'levels'>): string {
  if (s.level === null) return '';
  return `L${s.level}${s.levels ? `/${s.levels - 1}` : ''}`;
}

function rowHtml(s: DeviceSummary): string {
  const l = s.last;
  return (
    `<a class="cell id" href="#/d/${encodeURIComponent(s.id)}" title="${esc(s.id)}">${esc(s.id)}</a>` +
    `<span class="state ${s.online ? 'on' : 'off'}" title="last seen ${esc(new Date(s.lastSeen).toISOString())}">${s.online ? 'online' : 'offline'}</span>` +
    `<span class="cell board" title="${esc(s.board ?? '')}">${esc(s.board ?? '–')}</span>` +
    `<span class="cell model" title="${esc(s.modelId ?? '')}">${esc(s.modelId ?? '–')}${s.level !== null ? ` <span class="lvl">@${esc(levelText(s))}</span>` : ''}</span>` +
    `<span class="cell budget">${budgetHtml(s)}</span>` +
    `<span class="spark c-lat">${sparkline(s.spark.lat, 80, 26, 'lat', s.budgets.latencyMs)}<span class="v">${esc(fmt(l?.latencyMs))} ms</span></span>` +
    `<span class="spark c-ram">${sparkline(s.spark.ram, 80, 26, 'ram', s.budgets.ramMb)}<span class="v">${esc(fmt(l?.ramMb, 0))} MB</span></span>` +
    `<span class="spark c-temp">${sparkline(s.spark.temp, 80, 26, 'temp')}<span class="v">${esc(fmt(l?.tempC))} °C</span></span>`
  );
}
