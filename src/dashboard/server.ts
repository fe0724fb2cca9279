// The HTTP side: the app's own assets (nothing from a CDN), a small JSON API and one SSE stream.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EdgefitError, isEdgefitError, oneLine } from '../errors.js';
import { authorize, bearerMatches, Csrf, HostPolicy } from './auth.js';
import { APP_CSS, indexHtml } from './assets.js';
import type { Fleet } from './fleet.js';
import { DEVICE_ID_RE, toView, type FleetLink } from './link.js';
import type { DashboardStore } from './store.js';
import { adaptEvent } from './adapt.js';
import { validatePayload } from './validate.js';
import type { DeviceDetail, StreamMessage } from './model.js';
import { validateAction } from './validate.js';

const MAX_BODY = 16 * 1024;
/** A browser this far behind is dropped; it reconnects and gets a fresh snapshot. */
const MAX_SSE_BACKLOG = 8 * 1024 * 1024;

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
} as const;

/** Browser modules compiled by tsc next to this file (dist/src/dashboard/web/*.js), read once. */
function loadWebAssets(): Map<string, Buffer> {
  const dir = fileURLToPath(new URL('./web/', import.meta.url));
  const out = new Map<string, Buffer>();
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch (e) {
    throw new EdgefitError('INTERNAL', `dashboard web assets missing in ${dir} (run npm run build)`, { cause: e });
  }
  for (const f of files) if (/^[a-z0-9-]+\.js$/.test(f)) out.set(f, readFileSync(`${dir}${f}`));
  if (!out.has('app.js')) throw new EdgefitError('INTERNAL', `dashboard web assets incomplete in ${dir} (no app.js)`);
  return out;
}

interface SseClient {
  res: ServerResponse;
  device: string | null;
}

export interface HttpOptions {
  host: string;
  port: number;
  token?: string;
  flushMs: number;
  /** extra names the Host header may carry (reverse proxies, LAN names) */
  allowHosts?: readonly string[];
  /** null: actions are possible (the dashboard holds a signing key); else why they are not */
  actionsOff: string | null;
}

/** The page's and scripts' view of this session: the CSRF token for POSTs, and whether actions work. */
export interface SessionInfo {
  csrf: string;
  actions: boolean;
  reason: string | null;
}

export const CSRF_HEADER = 'x-edgefit-csrf';

export class DashboardHttp {
  private server: Server | null = null;
  private readonly assets = loadWebAssets();
  private readonly clients = new Set<SseClient>();
  private flushTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private linkUp: boolean | null = null;
  private readonly hosts: HostPolicy;
  private readonly csrf: Csrf;
  port = 0;

  constructor(
    private readonly opts: HttpOptions,
    private readonly fleet: Fleet,
    private readonly store: DashboardStore,
    private readonly link: FleetLink,
  ) {
    this.hosts = new HostPolicy(opts.host, opts.allowHosts);
    this.csrf = new Csrf(opts.token);
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => this.fail(res, e));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new EdgefitError('CONFIG', `dashboard cannot listen on ${this.opts.host}:${this.opts.port}: ${e.code ?? e.message}`, {
            cause: e,
          }),
        ),
      );
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    this.flushTimer = setInterval(() => this.flush(), this.opts.flushMs);
    this.heartbeat = setInterval(() => {
      for (const c of this.clients) c.res.write(': hb\n\n');
    }, 15_000);
  }

  /** Move what arrived since the last tick to SQLite and to every browser. */
  flush(): void {
    let msgs: StreamMessage[];
    try {
      msgs = this.fleet.flush();
    } catch (e) {
      process.stderr.write(`edgefit dashboard: flush failed: ${oneLine(e)}\n`);
      return;
    }
    const up = this.link.connected();
    if (up !== this.linkUp) {
      this.linkUp = up;
      msgs.push({ kind: 'link', mqtt: up });
    }
    if (!msgs.length || !this.clients.size) return;
    // serialise once per message, not once per client
    // fleet pages get every changed summary; a device page only its own device's messages
    const wantsFleet = [...this.clients].some((c) => !c.device);
    const fleetChunks: string[] = [];
    const linkChunks: string[] = [];
    const byDevice = new Map<string, string[]>();
    const add = (id: string, chunk: string): void => {
      let l = byDevice.get(id);
      if (!l) byDevice.set(id, (l = []));
      l.push(chunk);
    };
    const watched = new Set([...this.clients].map((c) => c.device).filter((d): d is string => d !== null));
    for (const m of msgs) {
      if (m.kind === 'link') linkChunks.push(`data: ${JSON.stringify(m)}\n\n`);
      else if (m.kind === 'fleet') {
        if (wantsFleet) fleetChunks.push(`data: ${JSON.stringify(m)}\n\n`);
        for (const d of m.devices) {
          if (watched.has(d.id))
            add(d.id, `data: ${JSON.stringify({ kind: 'fleet', devices: [d], total: m.total } satisfies StreamMessage)}\n\n`);
        }
      } else if (watched.has(m.device)) add(m.device, `data: ${JSON.stringify(m)}\n\n`);
    }
    for (const c of this.clients) {
      const text = linkChunks.join('') + (c.device ? (byDevice.get(c.device) ?? []).join('') : fleetChunks.join(''));
      if (!text) continue;
      if (c.res.writableLength > MAX_SSE_BACKLOG) {
        c.res.destroy();
        this.clients.delete(c);
        continue;
      }
      c.res.write(text);
    }
  }

  private fail(res: ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = isEdgefitError(e) ? (e.code === 'USAGE' ? 400 : e.code === 'FILE_NOT_FOUND' ? 404 : 500) : 500;
    const code = isEdgefitError(e) ? e.code : 'INTERNAL';
    this.json(res, status, { error: { code, message: oneLine(e) } });
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  }

  private refuse(res: ServerResponse, status: number, message: string): void {
    this.json(res, status, { error: { code: 'FORBIDDEN', message } });
  }

  private session(): SessionInfo {
    return { csrf: this.csrf.issue(), actions: this.opts.actionsOff === null, reason: this.opts.actionsOff };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    // DNS rebinding: a page on another name that resolves here still sends its own name
    if (!this.hosts.allows(req.headers.host, this.port)) {
      return this.refuse(
        res,
        421,
        `Host '${String(req.headers.host ?? '').slice(0, 100)}' is not a name of this dashboard (--allow-host adds names)`,
      );
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    if (url.pathname === '/healthz') {
      return this.json(res, 200, {
        ok: true,
        mqtt: this.link.connected(),
        devices: this.fleet.size(),
        sseClients: this.clients.size,
        received: this.link.stats.received,
        dropped: this.link.stats.dropped,
        // new ids waiting to prove they are devices (bounded; see admission.ts)
        pending: this.link.admission.stats().pending,
      });
    }
    if (!authorize(req, res, url, this.opts.token)) return;
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (method !== 'GET' && method !== 'HEAD') {
      // a view-only dashboard says so plainly, whoever asks
      if (this.opts.actionsOff !== null && /\/actions\//.test(path)) return this.refuse(res, 403, this.opts.actionsOff);
      const why = this.stateChangeRefusal(req);
      if (why) return this.refuse(res, 403, why);
    }
    if (method === 'GET' && (path === '/' || path === '/index.html')) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/html; charset=utf-8' });
      res.end(indexHtml(this.session()));
      return;
    }
    if (method === 'GET' && path === '/api/session') return this.json(res, 200, this.session());
    if (method === 'GET' && path === '/app.css') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/css; charset=utf-8' });
      res.end(APP_CSS);
      return;
    }
    const asset = /^\/web\/([a-z0-9-]+\.js)$/.exec(path);
    if (method === 'GET' && asset) {
      const body = this.assets.get(asset[1]!);
      if (!body) return this.json(res, 404, { error: { code: 'FILE_NOT_FOUND', message: 'no such asset' } });
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/javascript; charset=utf-8' });
      res.end(body);
      return;
    }
    if (method === 'GET' && path === '/api/fleet') {
      return this.json(res, 200, { devices: this.fleet.summaries(), stats: this.link.stats });
    }
    if (method === 'GET' && path === '/api/stream') return this.openStream(req, res, url);
    const dev = /^\/api\/devices\/([^/]+)(?:\/(history|actions\/([a-z-]+)))?$/.exec(path);
    if (dev) {
      const id = decodeURIComponent(dev[1]!);
      if (!DEVICE_ID_RE.test(id)) throw new EdgefitError('USAGE', 'bad device id');
      if (method === 'GET' && !dev[2]) return this.json(res, 200, this.detail(id));
      if (method === 'GET' && dev[2] === 'history') {
        const since = Number(url.searchParams.get('since') ?? 0);
        const limit = Math.min(Number(url.searchParams.get('limit') ?? 3600) || 3600, 3600);
        return this.json(res, 200, { history: this.store.history(id, Number.isFinite(since) ? since : 0, limit) });
      }
      if (method === 'POST' && dev[3]) {
        const ct = req.headers['content-type'] ?? '';
        if (!ct.startsWith('application/json')) throw new EdgefitError('USAGE', 'actions must be sent as application/json');
        if (!this.fleet.has(id)) throw new EdgefitError('FILE_NOT_FOUND', `unknown device '${id}'`);
        const { verb, args } = validateAction(dev[3], await readJson(req));
        const action = await this.link.request(id, verb, args);
        return this.json(res, 202, { action });
      }
    }
    return this.json(res, 404, { error: { code: 'FILE_NOT_FOUND', message: `no route ${method} ${path}` } });
  }

  /**
   * Why a state-changing request is refused, or null. Browsers send Origin on every POST: it
   * must be one of ours ('null', from sandboxed frames and file: pages, is not). A request with
   * neither Origin nor Referer is a script, which must then carry the bearer token. A request a
   * browser sent with its cookie must also carry the page's CSRF token.
   */
  private stateChangeRefusal(req: IncomingMessage): string | null {
    const bearer = bearerMatches(req, this.opts.token);
    const origin = req.headers.origin;
    const referer = req.headers.referer;
    if (origin !== undefined) {
      if (!this.hosts.allowsOrigin(origin, this.port)) return `cross-origin request refused (Origin ${origin.slice(0, 100)})`;
    } else if (referer !== undefined) {
      if (!this.hosts.allowsOrigin(referer, this.port)) return 'cross-origin request refused (Referer not of this dashboard)';
    } else if (!bearer) {
      return 'request without Origin refused: a script must send Authorization: Bearer <token>';
    }
    if (bearer) return null;
    const given = req.headers[CSRF_HEADER];
    if (!this.csrf.check(typeof given === 'string' ? given : undefined)) {
      return 'missing or stale CSRF token (reload the page; scripts send Authorization: Bearer <token>)';
    }
    return null;
  }

  private detail(id: string): DeviceDetail {
    const st = this.fleet.state(id);
    if (!st) throw new EdgefitError('FILE_NOT_FOUND', `unknown device '${id}'`);
    return {
      summary: st.summary,
      profile: st.profile,
      status: st.status,
      frontier: st.frontier,
      history: this.store.history(id, 0, 3600),
      events: this.store.events(id, 100).flatMap((e) => {
        const v = validatePayload('event', e.payload);
        return 'ok' in v ? [{ ...adaptEvent(v.ok, e.ts), ts: e.ts }] : [];
      }),
      actions: this.store.actions(id, 30).map(toView),
    };
  }

  private openStream(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const d = url.searchParams.get('device');
    if (d !== null && !DEVICE_ID_RE.test(d)) throw new EdgefitError('USAGE', 'bad device id');
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    // the snapshot first, so a (re)connecting browser never misses what changed meanwhile
    const all = this.fleet.summaries();
    const snap: StreamMessage = { kind: 'fleet', devices: d === null ? all : all.filter((x) => x.id === d), total: this.fleet.size() };
    const link: StreamMessage = { kind: 'link', mqtt: this.link.connected() };
    res.write(`retry: 1000\ndata: ${JSON.stringify(snap)}\n\ndata: ${JSON.stringify(link)}\n\n`);
    const client: SseClient = { res, device: d };
    this.clients.add(client);
    req.on('close', () => this.clients.delete(client));
  }

  clientCount(): number {
    return this.clients.size;
  }

  async stop(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.flushTimer = this.heartbeat = null;
    for (const c of this.clients) c.res.destroy();
    this.clients.clear();
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new EdgefitError('USAGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (!size) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new EdgefitError('USAGE', 'request body is not valid JSON');
  }
}
