/// <reference lib="dom" />
// Small DOM and formatting helpers for the browser modules.

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escape anything that came from a device before it goes into markup. */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c] ?? c);
}

export function fmt(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  return v.toFixed(digits);
}

export function ago(ts: number, now = Date.now()): string {
  if (!ts) return 'never';
  const s = Math.max(0, Math.round((now - ts) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function clock(ts: number): string {
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour12: false });
}

export function $(sel: string, root: ParentNode = document): HTMLElement {
  const el = root.querySelector(sel);
  if (!el) throw new Error(`missing element ${sel}`);
  return el as HTMLElement;
}

export async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url, { credentials: 'same-origin' });
  const body = (await r.json()) as T & { error?: { message: string } };
  if (!r.ok) throw new Error(body.error?.message ?? `HTTP ${r.status}`);
  return body;
}

function meta(name: string): string | null {
  return document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? null;
}

/** Why this dashboard cannot send actions (it holds no operator key), or null when it can. */
export function actionsOff(): string | null {
  return meta('edgefit-actions-off');
}

export async function postJson<T>(url: string, data: unknown): Promise<T> {
  const r = await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    // the page's CSRF token: a cross-site page can make the browser send our cookie, never this
    headers: { 'Content-Type': 'application/json', 'X-Edgefit-CSRF': meta('edgefit-csrf') ?? '' },
    body: JSON.stringify(data ?? {}),
  });
  const body = (await r.json()) as T & { error?: { message: string } };
  if (!r.ok) throw new Error(body.error?.message ?? `HTTP ${r.status}`);
  return body;
}
