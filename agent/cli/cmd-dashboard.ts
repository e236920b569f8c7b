// `buildcoord dashboard`: the fleet as a web page served by this process
// (read-only unless --allow-actions), or with --out as one static HTML file.

import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, basename, join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { UsageError } from '../errors.js';
import { parseCount, parseDuration } from '../model/input.js';
import type { Handler } from './cmd-jobs.js';
import type { Context } from './context.js';

const MIN_TOKEN = 16;

async function actionToken(ctx: Context, file: unknown): Promise<string> {
  let token: string | undefined;
  let where: string;
  if (typeof file === 'string') {
    where = `--token-file ${file}`;
    try {
      token = (await readFile(file, 'utf8')).trim();
      if (process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) ctx.io.err(`warning: ${file} is readable by other users; chmod 600 it\n`);
    } catch (e) {
      throw new UsageError(`${where}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  } else {
    where = 'BUILDCOORD_DASHBOARD_TOKEN';
    token = ctx.io.env.BUILDCOORD_DASHBOARD_TOKEN?.trim();
    if (!token) throw new UsageError('--allow-actions needs a token: --token-file FILE or BUILDCOORD_DASHBOARD_TOKEN (e.g. from `openssl rand -hex 24`)');
  }
  if (token.length < MIN_TOKEN) throw new UsageError(`${where}: the token must be at least ${MIN_TOKEN} characters`);
  if (/\s/.test(token)) throw new UsageError(`${where}: the token must be one word (no spaces or line breaks)`);
  return token;
}

export function registerDashboardCommands(y: Argv, handler: Handler): Argv {
  return y.command(
    'dashboard',
    'A web page of the fleet, queue, history, messages, locks and events (read-only unless --allow-actions)',
    (a) =>
      a
        .option('port', { type: 'string', default: '7788', describe: 'Port to listen on (0: any free port; the URL is the first line printed)' })
        .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
        .option('out', { type: 'string', describe: 'Write the page with its data embedded to this file and exit (no server, no polling)' })
        .option('stale-after', { type: 'string', default: '5m', describe: "A heartbeat older than this is stale (use the agents' --lease)" })
        .option('refresh', { type: 'string', default: '3s', describe: 'Read the repository at most this often, however many browsers poll' })
        .option('allow-actions', { type: 'boolean', default: false, describe: 'Allow pause, resume, cancel and retry from the page (needs a token)' })
        .option('token-file', { type: 'string', describe: 'File holding the action token (else BUILDCOORD_DASHBOARD_TOKEN)' })
        .example('$0 dashboard', 'serve on http://127.0.0.1:7788/')
        .example('$0 dashboard --port 0', 'any free port; the first line printed is the URL')
        .example('$0 dashboard --out fleet.html', 'a static snapshot to publish')
        .example('$0 dashboard --allow-actions --token-file ~/.config/buildcoord/dashboard.token', 'with write actions'),
    handler(async (ctx, argv) => {
      const staleAfterMs = parseDuration(argv['stale-after'], '--stale-after');
      const ttlMs = parseDuration(argv.refresh, '--refresh');
      if (ttlMs < 500 || ttlMs > 600_000) throw new UsageError('--refresh must be between 500ms and 10m');
      const port = parseCount(argv.port, '--port', 0, 65535);
      const host = String(argv.host);
      if (!/^[A-Za-z0-9.:-]{1,253}$/.test(host)) throw new UsageError(`--host ${JSON.stringify(host)}: not a host name or address`);
      const clock = ctx.io.clock;
      // Loaded only for this command: the rest of the CLI starts faster without them.
      const [{ runAction }, { renderPage }, { readDashboard }, { startDashboardServer }] = await Promise.all([
        import('../dashboard/ops.js'),
        import('../dashboard/page.js'),
        import('../dashboard/read.js'),
        import('../dashboard/server.js'),
      ]);

      if (argv.out !== undefined) {
        if (argv['allow-actions']) throw new UsageError('--out writes a static page: it cannot have --allow-actions');
        const out = resolve(String(argv.out));
        const data = await readDashboard(await ctx.store(), { now: clock, staleAfterMs });
        // Write beside the target and rename: a web server publishing the file never serves half of it.
        const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`);
        try {
          await writeFile(tmp, renderPage({ mode: 'static', data }));
          await rename(tmp, out);
        } catch (e) {
          throw new UsageError(`--out ${String(argv.out)}: cannot write it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        if (ctx.args.json) return ctx.json({ out, commit: data.commit, builders: data.builders.length, jobs: data.queue.jobs.length + data.history.length });
        ctx.io.out(`${out}\n`);
        return;
      }

      const token = argv['allow-actions'] ? await actionToken(ctx, argv['token-file']) : null;
      if (!argv['allow-actions'] && (argv['token-file'] !== undefined)) ctx.io.err('warning: --token-file has no effect without --allow-actions; the dashboard is read-only\n');
      const store = await ctx.store();
      const by = ctx.actor;
      const server = await startDashboardServer({
        host,
        port,
        ttlMs,
        pollMs: Math.max(2000, ttlMs),
        clock,
        load: () => readDashboard(store, { now: clock, staleAfterMs, actionsEnabled: token !== null }),
        actions: token === null ? undefined : { token, run: (a) => runAction(store, a, by, clock()) },
        log: (line) => ctx.io.err(`${clock().toISOString()} ${line}\n`),
      });
      // The URL first and alone on its line: scripts and tests read it.
      ctx.io.out(`${server.url}\n`);
      ctx.io.err(`dashboard of ${store.remote}: ${token ? 'actions allowed with the token' : 'read-only'}; Ctrl-C to stop\n`);
      if (token && !/^(127\.|localhost$|::1$)/.test(host)) ctx.io.err('warning: the action token travels unencrypted over plain HTTP; put a TLS proxy in front or listen on 127.0.0.1\n');
      // The listeners stay until the server is closed: removing one inside the
      // signal's own dispatch would leave execa's signal-exit handler alone on
      // it, and that one re-raises the signal (exit 143 instead of a clean 0).
      let stop = () => {};
      const stopped = new Promise<void>((done) => (stop = done));
      const onSignal = () => stop();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        await stopped;
        await server.close();
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    }),
  );
}
