// Access control. A view-only dashboard (no operator key) may run open on loopback (a user on
// their own box); anywhere else, and wherever the dashboard can send commands, a token is
// mandatory (generated and kept in <stateDir>/token when none is given). The token is accepted
// as `Authorization: Bearer T`, as a cookie, or once as `?token=T`, which sets the cookie and
// redirects to the same URL without it (so the token does not linger in history or logs).
// Beyond the token: the Host header must name this dashboard (DNS rebinding), and a
// state-changing request must come from an allowed Origin and carry a CSRF token (cross-site).
import { timingSafeEqual, createHash, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { EdgefitError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';

export const COOKIE = 'edgefit_token';

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

/** Throws unless the (host, token) pair is safe to start with. */
export function checkListenPolicy(host: string, token: string | undefined): void {
  if (token !== undefined && token.length < 16) {
    throw new EdgefitError('USAGE', 'the dashboard token must be at least 16 characters', { remedy: { option: 'token' } });
  }
  if (!isLoopbackHost(host) && !token) {
    throw new EdgefitError('USAGE', `dashboard refuses to listen on ${host} without a token (only loopback may run open)`, {
      remedy: { option: 'token' },
    });
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison (hashing first makes lengths equal). */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

const TOKEN_RE = /^[A-Za-z0-9_-]{16,512}$/;

/** 32 random bytes, base64url: what a generated dashboard token is. */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The token in <stateDir>/token, created (0600, atomically) when absent or unusable, so a
 * restarted dashboard keeps its logins and its printed URL valid.
 */
export function loadOrCreateToken(stateDir: string): { token: string; path: string; created: boolean } {
  const path = join(stateDir, 'token');
  try {
    return tokenFile(path);
  } catch (e) {
    throw new EdgefitError('CONFIG', `cannot keep the dashboard token in '${path}': ${(e as Error).message}`, { cause: e });
  }
}

function tokenFile(path: string): { token: string; path: string; created: boolean } {
  if (existsSync(path)) {
    const t = readFileSync(path, 'utf8').trim();
    if (TOKEN_RE.test(t)) {
      // a copy restored with loose permissions is tightened, not trusted as is
      if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
      return { token: t, path, created: false };
    }
  }
  const token = generateToken();
  writeFileAtomic(path, `${token}\n`, 0o600);
  return { token, path, created: true };
}

/** Split a Host header (or a URL's host) into a lower-case name and a port. */
export function splitHost(h: string, defaultPort: number): { name: string; port: number } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(h.trim());
  if (!m) return null;
  const name = m[1]!.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return { name, port: m[2] !== undefined ? Number(m[2]) : defaultPort };
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/**
 * The names a browser may use to reach this dashboard. A page on an attacker's domain that
 * rebinds its DNS to 127.0.0.1 still sends its own name as Host, so anything else is refused.
 * Built in: the listen address, localhost, 127.0.0.1 and [::1], each with the dashboard's port
 * (and, when listening on every interface, this box's addresses). `--allow-host` adds names:
 * 'dash.example' (any port, e.g. behind a reverse proxy) or 'dash.example:8443'.
 */
export class HostPolicy {
  private readonly names = new Set<string>();
  private readonly anyPort = new Set<string>();
  private readonly exact = new Set<string>();

  constructor(listenHost: string, allow: readonly string[] = []) {
    const lh = listenHost.toLowerCase().replace(/^\[(.*)\]$/, '$1');
    for (const n of ['localhost', '127.0.0.1', '::1']) this.names.add(n);
    if (WILDCARD.has(lh)) {
      for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) this.names.add(a.address.toLowerCase());
    } else this.names.add(lh);
    for (const raw of allow) {
      const a = raw.trim();
      if (!a) continue;
      const hp = splitHost(a, -1);
      if (!hp || !/^[a-z0-9.:-]+$/.test(hp.name) || (hp.port !== -1 && (hp.port < 1 || hp.port > 65535))) {
        throw new EdgefitError('USAGE', `bad allowed host '${a}': give a host name or address, optionally with :port`);
      }
      if (hp.port === -1) this.anyPort.add(hp.name);
      else this.exact.add(`${hp.name}:${hp.port}`);
    }
  }

  /** Whether `host` (a Host header, or an Origin's host) names this dashboard listening on `port`. */
  allows(host: string | undefined, port: number, defaultPort = 80): boolean {
    if (!host) return false;
    const hp = splitHost(host, defaultPort);
    if (!hp) return false;
    if (this.anyPort.has(hp.name) || this.exact.has(`${hp.name}:${hp.port}`)) return true;
    return hp.port === port && this.names.has(hp.name);
  }

  /** Whether an Origin (or a Referer's origin) is one of ours: http(s) and an allowed host. */
  allowsOrigin(origin: string, port: number): boolean {
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
    return this.allows(u.host, port, u.protocol === 'https:' ? 443 : 80);
  }
}

/**
 * CSRF tokens: a fresh nonce per page (or /api/session) and its HMAC under a key only the server
 * holds (the dashboard token, else a per-process random key). No server-side state, and a
 * restarted dashboard with the same token still accepts the pages it served.
 */
export class Csrf {
  constructor(private readonly key: string | Buffer = randomBytes(32)) {}

  private mac(nonce: string): Buffer {
    return createHmac('sha256', this.key).update(`edgefit-csrf-v1\n${nonce}`).digest();
  }

  issue(): string {
    const nonce = randomBytes(18).toString('base64url');
    return `${nonce}.${this.mac(nonce).toString('base64url')}`;
  }

  /** Constant-time check of an X-Edgefit-CSRF value. */
  check(given: string | undefined): boolean {
    if (!given) return false;
    const i = given.indexOf('.');
    if (i <= 0) return false;
    const want = this.mac(given.slice(0, i));
    const got = Buffer.from(given.slice(i + 1), 'base64url');
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/** A valid `Authorization: Bearer` header: a script, which no browser attaches on its own. */
export function bearerMatches(req: IncomingMessage, token: string | undefined): boolean {
  const auth = req.headers.authorization;
  return !!token && !!auth?.startsWith('Bearer ') && tokenMatches(auth.slice(7).trim(), token);
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * Returns true when the request may proceed. Otherwise it has already answered (401, or a
 * redirect that trades the ?token= for a cookie).
 */
export function authorize(req: IncomingMessage, res: ServerResponse, url: URL, token: string | undefined): boolean {
  if (!token) return true;
  if (bearerMatches(req, token)) return true;
  const q = url.searchParams.get('token');
  if (q !== null) {
    if (!tokenMatches(q, token)) return deny(res);
    url.searchParams.delete('token');
    res.writeHead(303, {
      'Set-Cookie': `${COOKIE}=${encodeURIComponent(q)}; HttpOnly; SameSite=Strict; Path=/`,
      Location: url.pathname + (url.search || ''),
    });
    res.end();
    return false;
  }
  if (tokenMatches(cookieValue(req, COOKIE), token)) return true;
  return deny(res);
}

function deny(res: ServerResponse): false {
  res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'WWW-Authenticate': 'Bearer' });
  res.end('edgefit dashboard: token required (open /?token=... once, or send Authorization: Bearer ...)\n');
  return false;
}
