// The dashboard's HTTP server (node:http, no framework):
//
//   GET  /             the page (HTML, CSS and script inline)
//   GET  /api/fleet    the fleet as JSON (schemas/dashboard-api.json), from a snapshot shared by all browsers
//   POST /api/actions  pause, resume, cancel, retry: only with --allow-actions, and a bearer token
//
// Read-only unless actions are switched on. The token is compared in constant
// time; requests must name this server in Host when it listens on loopback
// (so a web page elsewhere cannot reach it by DNS rebinding), and POSTs must be
// JSON, which a cross-site form cannot send.

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordError, EXIT, UsageError } from '../errors.js';
import type { DashboardData } from '../model/dashboard.js';
import { SharedSnapshot } from './cache.js';
import { parseAction, type ActionOutcome, type DashboardAction } from './ops.js';
import { contentSecurityPolicy, renderPage } from './page.js';

export interface DashboardServerOptions {
  host: string;
  port: number;
  /** Reads the fleet; called at most once per ttlMs whatever the number of browsers. */
  load: () => Promise<DashboardData>;
  ttlMs?: number;
  pollMs?: number;
  clock?: () => Date;
  /** Present only with --allow-actions. */
  actions?: { token: string; run: (a: DashboardAction) => Promise<ActionOutcome> };
  /** One line per action for the operator's terminal. */
  log?: (line: string) => void;
}

export interface DashboardServer {
  url: string;
  port: number;
  snapshot: SharedSnapshot<DashboardData>;
  close(): Promise<void>;
}

const MAX_BODY = 4096;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant time whatever the lengths: both sides are hashed to 32 bytes first. */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined || expected.length === 0) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

function bearer(req: IncomingMessage): string | undefined {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function statusFor(e: unknown): number {
  if (e instanceof UsageError) return 400;
  if (e instanceof CoordError) return e.exitCode === EXIT.unreachable ? 503 : e.exitCode === EXIT.permission ? 502 : 409;
  return 500;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new UsageError(`the body is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const clock = opts.clock ?? (() => new Date());
  const snapshot = new SharedSnapshot(opts.load, opts.ttlMs ?? 3000, () => clock().getTime());
  const pages = { html: renderPage({ mode: 'live', pollMs: opts.pollMs ?? 5000 }), csp: contentSecurityPolicy('live') };
  let allowedHosts: Set<string> | null = null;

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
      'Cross-Origin-Resource-Policy': 'same-origin',
      ...extra,
    });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value) + '\n', extra);
  const fail = (res: ServerResponse, status: number, error: string, extra: Record<string, string> = {}) => json(res, status, { error }, extra);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (allowedHosts && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) return fail(res, 421, 'unknown Host: open the dashboard by the address it printed');
    const path = new URL(req.url ?? '/', 'http://dashboard.invalid').pathname;
    if (path === '/' || path === '/index.html') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'use GET', { Allow: 'GET, HEAD' });
      return send(res, 200, 'text/html; charset=utf-8', pages.html, { 'Content-Security-Policy': `${pages.csp}; frame-ancestors 'none'` });
    }
    if (path === '/api/fleet') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(res, 405, 'use GET', { Allow: 'GET, HEAD' });
      try {
        const data = await snapshot.get();
        return json(res, 200, { ...data, served_at: clock().toISOString() });
      } catch (e) {
        return fail(res, statusFor(e) === 409 ? 502 : 503, `cannot read the coordination repository: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    if (path === '/api/actions') {
      if (!opts.actions) return fail(res, 403, 'actions are off: start the dashboard with --allow-actions and a token (--token-file or BUILDCOORD_DASHBOARD_TOKEN)');
      if (req.method !== 'POST') return fail(res, 405, 'use POST', { Allow: 'POST' });
      if (!tokenMatches(bearer(req), opts.actions.token)) {
        req.resume();
        return fail(res, 401, 'a valid token is required: Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer realm="buildcoord dashboard"' });
      }
      if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
        req.resume();
        return fail(res, 415, 'send the action as Content-Type: application/json');
      }
      try {
        const text = await readBody(req);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new UsageError('the body is not valid JSON');
        }
        const action = parseAction(body);
        const out = await opts.actions.run(action);
        snapshot.invalidate();
        opts.log?.(`action ${action.action} ${'job' in action ? action.job : action.builder ?? 'fleet'}: ${out.message}`);
        return json(res, 200, { ok: true, ...out });
      } catch (e) {
        return fail(res, statusFor(e), (e as Error).message.split('\n')[0] ?? 'failed');
      }
    }
    return fail(res, 404, 'not found');
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) fail(res, 500, `internal error: ${(e as Error).message}`);
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  if (isLoopback(opts.host)) {
    allowedHosts = new Set([`${hostPart}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`].map((h) => h.toLowerCase()));
  }
  return {
    url: `http://${hostPart}:${port}/`,
    port,
    snapshot,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
