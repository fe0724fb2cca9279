// Access control. On loopback the dashboard may run open (a user on their own box); anywhere
// else a token is mandatory and the server refuses to start without one. The token is accepted
// as `Authorization: Bearer T`, as a cookie, or once as `?token=T`, which sets the cookie and
// redirects to the same URL without it (so the token does not linger in history or logs).
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { EdgefitError } from '../errors.js';

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
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ') && tokenMatches(auth.slice(7).trim(), token)) return true;
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
