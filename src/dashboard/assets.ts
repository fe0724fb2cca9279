// The page shell and stylesheet, embedded so the server needs no file lookup for them and the
// app works with no network beyond the dashboard itself. Browser logic lives in ./web/*.ts.

const ATTR_ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const attr = (v: string): string => v.replace(/[&<>"']/g, (c) => ATTR_ESC[c] ?? c);

/**
 * The page, with this page's CSRF token (sent back as X-Edgefit-CSRF on actions) and, on a
 * view-only dashboard, why its action controls are disabled.
 */
export function indexHtml(session: { csrf: string; reason: string | null }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="edgefit-csrf" content="${attr(session.csrf)}">
${
  session.reason !== null
    ? `<meta name="edgefit-actions-off" content="${attr(session.reason)}">
`
    : ''
}<title>edgefit fleet</title>
<link rel="stylesheet" href="/app.css">
<script type="module" src="/web/app.js"></script>
</head>
<body>
<header class="top">
  <a class="brand" href="#/">edgefit <span>fleet</span></a>
  <span id="crumb"></span>
  <span class="spacer"></span>
  <span id="conn" class="conn" data-state="connecting">connecting…</span>
</header>
<main id="main"><p class="muted pad">Loading…</p></main>
</body>
</html>
`;
}

export const APP_CSS = `
:root { --bg:#0f1419; --panel:#161c24; --line:#263040; --fg:#d8dee9; --muted:#8391a7; --ok:#3fb950;
  --bad:#f85149; --warn:#d29922; --acc:#58a6ff; --lat:#58a6ff; --ram:#bc8cff; --temp:#f0883e; --cpu:#3fb950;
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color-scheme: dark; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); height:100vh; display:flex; flex-direction:column; }
a { color: var(--acc); text-decoration: none; }
a:hover { text-decoration: underline; }
.top { display:flex; align-items:center; gap:14px; padding:8px 16px; border-bottom:1px solid var(--line); background:var(--panel); }
.brand { font-weight:700; color:var(--fg); font-size:15px; }
.brand span { color: var(--acc); font-weight:500; }
.spacer { flex:1; }
.conn { font-size:12px; color:var(--muted); }
.conn[data-state=live]::before { content:"● "; color:var(--ok); }
.conn[data-state=down]::before { content:"● "; color:var(--bad); }
main { flex:1; min-height:0; display:flex; flex-direction:column; }
.pad { padding: 16px; }
.muted { color: var(--muted); }
.toolbar { display:flex; flex-wrap:wrap; gap:10px; align-items:center; padding:10px 16px; border-bottom:1px solid var(--line); }
.toolbar label { color: var(--muted); display:flex; gap:6px; align-items:center; }
select, input, button { background:#0b0f14; color:var(--fg); border:1px solid var(--line); border-radius:4px; padding:4px 8px; font:inherit; }
button { cursor:pointer; background:#1f2937; }
button:hover { border-color: var(--acc); }
button:disabled { opacity:.5; cursor:default; }
.counts { margin-left:auto; color:var(--muted); }
.counts b { color: var(--fg); }
.grid-head, .row { display:grid; grid-template-columns: 130px 76px 140px 220px 250px 150px 150px 150px; gap:10px; align-items:center; padding:0 16px; }
.grid-head { height:30px; color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; border-bottom:1px solid var(--line); }
.viewport { flex:1; overflow-y:auto; position:relative; min-height:0; }
.spacer-rows { position:relative; width:100%; }
.row { position:absolute; left:0; right:0; height:44px; border-bottom:1px solid #1b2230; white-space:nowrap; }
.row:hover { background:#1a2130; }
.row .id { font-weight:600; overflow:hidden; text-overflow:ellipsis; }
.cell { overflow:hidden; text-overflow:ellipsis; }
.state { font-size:12px; }
.state.on::before { content:"● "; color:var(--ok); }
.state.off::before { content:"● "; color:var(--bad); }
.state.off { color: var(--muted); }
.budget { font-size:12px; }
.budget .b { margin-right:6px; }
.b.met { color: var(--ok); }
.b.unmet { color: var(--bad); font-weight:600; }
.viol { color: var(--bad); font-size:11px; }
.shortfall { color: var(--warn); font-size:11px; display:block; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.spark { display:flex; align-items:center; gap:6px; }
.spark svg { flex:none; }
.spark .v { font-variant-numeric: tabular-nums; font-size:12px; min-width:56px; text-align:right; }
.lvl { color: var(--muted); }
.empty { padding: 24px 16px; color: var(--muted); }
/* device page */
.dev { overflow-y:auto; padding: 14px 16px 40px; display:grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 14px; align-content:start; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:12px 14px; min-width:0; }
.card h2 { margin:0 0 8px; font-size:13px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); font-weight:600; }
.card.wide { grid-column: 1 / -1; }
.kv { display:grid; grid-template-columns: 130px 1fr; gap:4px 12px; }
.kv dt { color: var(--muted); }
.kv dd { margin:0; overflow:hidden; text-overflow:ellipsis; }
.title { display:flex; align-items:baseline; gap:12px; }
.title h1 { margin:0; font-size:20px; }
.charts { display:grid; grid-template-columns: repeat(2, minmax(0,1fr)); gap: 12px; }
.chart .label { font-size:12px; color:var(--muted); display:flex; justify-content:space-between; }
.chart svg, .frontier svg { width:100%; height:auto; display:block; }
svg text { fill: var(--muted); font-size: 10px; }
svg .axis { stroke: var(--line); }
svg .grid { stroke: #1e2633; }
svg .budget-line { stroke: var(--bad); stroke-dasharray: 4 3; }
svg .front { stroke: var(--acc); fill: none; }
svg .pt { fill: var(--acc); }
svg .pt.chosen { fill: var(--ok); stroke: #fff; stroke-width: 1.5; }
.events { max-height: 320px; overflow-y: auto; }
table { border-collapse: collapse; width:100%; }
td, th { text-align:left; padding:3px 8px 3px 0; border-bottom:1px solid #1b2230; vertical-align:top; }
th { color: var(--muted); font-weight:500; font-size:11px; text-transform:uppercase; }
td.ts { color: var(--muted); white-space:nowrap; font-variant-numeric: tabular-nums; }
.actions form { display:flex; flex-wrap:wrap; gap:8px; align-items:flex-end; margin-bottom:10px; }
.actions form label { display:flex; flex-direction:column; gap:2px; color:var(--muted); font-size:11px; }
.actions input { width: 100px; }
.actionlog { max-height: 340px; overflow-y:auto; }
.act { border-top:1px solid var(--line); padding:6px 0; }
.act .head { display:flex; gap:10px; align-items:baseline; }
.act .st.pending { color: var(--warn); }
.act .st.ok { color: var(--ok); }
.act .st.err { color: var(--bad); }
.act pre { margin:4px 0 0; white-space:pre-wrap; word-break:break-all; font-size:11px; color:#b8c2d3; background:#0b0f14; padding:6px; border-radius:4px; max-height:160px; overflow:auto; }
.formerr { color: var(--bad); font-size:12px; min-height:1em; }
`;
