// `buildcoord dashboard` end to end: the CLI serves the page against a real
// temporary coordination repository (two builders, one of them stale; queued,
// running, failed and finished jobs; a message, a lock), and a real headless
// Chromium (Debian's, driven by playwright-core) looks at it the way a person
// would. Also: the JSON endpoint against its schema, the write actions and
// their token, the static --out page, and shared/health_dashboard.json.

import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import type { BrowserContext, Page } from 'playwright-core';
import { SharedSnapshot } from '../../agent/dashboard/cache.js';
import { parseAction, updateHealthDashboard } from '../../agent/dashboard/ops.js';
import { scriptSafeJson } from '../../agent/dashboard/page.js';
import { tokenMatches } from '../../agent/dashboard/server.js';
import { agentClaim, agentComplete } from '../../agent/daemon/transitions.js';
import { EVENT_LOG_FORMAT, parseEvents, sameSummary, summarize, type DashboardData } from '../../agent/model/dashboard.js';
import type { HealthDashboardFile, Job, JobsFile, StatusFile } from '../../agent/model/types.js';
import { validateDoc } from '../../agent/model/validate.js';
import { HeartbeatWriter } from '../../agent/store/heartbeat.js';
import { addJobs } from '../../agent/store/ops.js';
import { Store } from '../../agent/store/store.js';
import { cleanupAll, cliPath, git, gitEnv, onCleanup, repoRoot, requireTool, runCli, tmpDir } from '../helpers/git.js';

after(cleanupAll);

const XSS = '<script>alert(1)</script>';
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TOKEN = 'e3b0c44298fc1c149afbf4c8996fb924';

// ---------------------------------------------------------------- the fleet under test

interface Fleet {
  base: string;
  repo: string;
  ids: { failed: string; done1: string; done2: string; running: string; xss: string; blocked: string };
  cli: (args: string[]) => ReturnType<typeof runCli>;
}

let fleetPromise: Promise<Fleet> | undefined;

/** One repository for the whole file: seeding it with real transactions takes a few seconds. */
function fleet(): Promise<Fleet> {
  fleetPromise ??= (async () => {
    const base = await tmpDir('dash-');
    const repo = join(base, 'coord.git');
    const env = { BUILDCOORD_HOME: join(base, 'cli-home') };
    const cli = (args: string[]) => runCli([...args, '--repo', repo], { env });
    const init = await runCli(['init', '--repo', repo], { env });
    assert.equal(init.exitCode, 0, init.stderr);

    const now = Date.now();
    const at = (secondsAgo: number) => () => new Date(now - secondsAgo * 1000);
    const b1 = new Store({ remote: repo, home: join(base, 'b1'), actor: 'build1' });
    const b2 = new Store({ remote: repo, home: join(base, 'b2'), actor: 'build2' });
    onCleanup(() => {
      b1.close();
      b2.close();
    });
    const add = async (store: Store, type: string, description: string, secondsAgo: number) =>
      (await addJobs(store, [{ type, commit: null, description, dependencies: [] }], { clock: at(secondsAgo) })).result[0]!;
    const run = async (store: Store, builder: string, job: Job, startAgo: number, seconds: number | null, status: 'completed' | 'failed' = 'completed') => {
      const c = await agentClaim(store, { builder: { name: builder }, leaseMs: 60_000, now: at(startAgo), agentVersion: '0.1.0' });
      const claimed = c.result as Job;
      assert.equal(claimed.id, job.id);
      if (seconds === null) return;
      const summary = status === 'failed' ? 'dpkg-buildpackage exited 2: missing build dependency' : `built in ${seconds}s`;
      await agentComplete(
        store,
        { id: job.id, attempt: claimed.attempt, builder, status, result: { summary, exit_code: status === 'failed' ? 2 : 0, duration_seconds: seconds }, durationSeconds: seconds, artifacts: [] },
        at(startAgo - seconds),
        [],
      );
    };
    // build1: two finished make builds, then one running for over two minutes.
    const done1 = await add(b1, 'make', 'build app (nightly)', 3000);
    await run(b1, 'build1', done1, 2900, 95);
    const done2 = await add(b1, 'make', 'build app', 2000);
    await run(b1, 'build1', done2, 1900, 70);
    // build2: a Debian package that failed; then build2 went silent.
    const failed = await add(b2, 'deb', 'package app', 1500);
    await run(b2, 'build2', failed, 1400, 42, 'failed');
    const running = await add(b1, 'make', 'build app for release 2.1', 300);
    await run(b1, 'build1', running, 125, null);
    // Queued: one whose description is markup, and one waiting for it.
    const addXss = await cli(['job', 'add', '--type', 'make', '--description', XSS]);
    const xss = addXss.stdout.trim();
    assert.match(xss, /^job_/, addXss.stderr);
    const addBlocked = await cli(['job', 'add', '--type', 'deb', '--after', xss, '--description', 'package the release']);
    const blocked = addBlocked.stdout.trim();
    assert.match(blocked, /^job_/, addBlocked.stderr);
    const msg = await cli(['msg', 'send', '--to', 'build2', '--type', 'warning', '--subject', 'disk almost full on build2', '--body', 'only 3 GB left']);
    assert.equal(msg.exitCode, 0, msg.stderr);
    const lock = await cli(['lock', 'acquire', 'deploy', '--ttl', '30m', '--note', 'release 2.1 rollout']);
    assert.equal(lock.exitCode, 0, lock.stderr);

    const hb1 = new HeartbeatWriter(b1, 'build1');
    await hb1.write({ server: 'build1', timestamp: new Date().toISOString(), uptime_seconds: 3600, healthy: true, agent_version: '0.1.0', distcc_mode: 'pump', current_jobs: [running.id] });
    // Stale: an hour old, far beyond the dashboard's 5 minute threshold.
    await new HeartbeatWriter(b2, 'build2').write({ server: 'build2', timestamp: new Date(now - 3_600_000).toISOString(), uptime_seconds: 86400, healthy: true, agent_version: '0.1.0', distcc_mode: 'local' });
    return { base, repo, cli, ids: { failed: failed.id, done1: done1.id, done2: done2.id, running: running.id, xss, blocked } };
  })();
  return fleetPromise;
}

// ---------------------------------------------------------------- the dashboard process

interface Served {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  stop(): Promise<number | null>;
}

let homes = 0;

/** `buildcoord dashboard --port 0`: the OS picks a free port and the first line printed is the URL. */
async function serve(f: Fleet, extra: string[] = [], env: Record<string, string> = {}): Promise<Served> {
  const home = join(f.base, `dash-home-${++homes}`);
  const proc = spawn(process.execPath, [cliPath(), 'dashboard', '--port', '0', '--repo', f.repo, ...extra], {
    env: { ...(await gitEnv()), BUILDCOORD_HOME: home, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('close', (code) => r(code)));
  onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL from the dashboard within 20 s; stderr: ${err}`)), 20_000);
    const check = () => {
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the dashboard exited ${code} before printing its URL: ${err}`));
    });
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  return {
    url,
    proc,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

async function getJson(url: string): Promise<{ status: number; body: DashboardData & { served_at?: string } }> {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  return { status: r.status, body: (await r.json()) as DashboardData };
}

async function post(url: string, body: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(new URL('api/actions', url), { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** GET with a Host header of our choosing (fetch does not let us set it). */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL('api/fleet', url), { headers: { Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

async function jobsOnMain(repo: string): Promise<Job[]> {
  return (JSON.parse(await git(repo, 'show', 'main:coordination/jobs.json')) as JobsFile).jobs;
}

function apiValidator() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  (ajvFormats as unknown as (a: Ajv2020) => void)(ajv);
  const schema = JSON.parse(readFileSync(join(repoRoot(), 'schemas', 'dashboard-api.json'), 'utf8')) as object;
  const validate = ajv.compile(schema);
  return (doc: unknown) => {
    const ok = validate(doc);
    return ok ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message}`);
  };
}

// ---------------------------------------------------------------- the browser

let browserPromise: Promise<BrowserContext> | undefined;

async function browser(t: TestContext): Promise<BrowserContext | null> {
  if (!requireTool('chromium', t)) return null;
  browserPromise ??= (async () => {
    const { chromium } = await import('playwright-core');
    const profile = await tmpDir('chromium-profile-');
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: existsSync(CHROMIUM) ? CHROMIUM : 'chromium',
      headless: true,
      chromiumSandbox: false,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1360, height: 900 },
      deviceScaleFactor: 1,
      locale: 'en-GB',
      timezoneId: 'UTC',
    });
    onCleanup(() => ctx.close());
    return ctx;
  })();
  return browserPromise;
}

interface Watched {
  page: Page;
  dialogs: string[];
  errors: string[];
  external: string[];
}

async function open(ctx: BrowserContext, url: string): Promise<Watched> {
  const page = await ctx.newPage();
  const w: Watched = { page, dialogs: [], errors: [], external: [] };
  page.on('dialog', (d) => {
    w.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error') w.errors.push(m.text());
  });
  page.on('pageerror', (e) => w.errors.push(e.message));
  // Nothing may leave 127.0.0.1: no CDN, no fonts, no analytics.
  await page.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'file:' || u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    w.external.push(u.href);
    return route.abort();
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  return w;
}

const text = (page: Page, selector: string) => page.locator(selector).first().innerText();

/** "2m05s" -> 125 */
function seconds(span: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(span.trim());
  assert.ok(m && span.trim() !== '', `not a duration: ${JSON.stringify(span)}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

// ---------------------------------------------------------------- tests

describe('dashboard', () => {
  before(async () => {
    await fleet();
  });

  it('in a real browser: stale builder, running job with builder and elapsed time, failed job, chart, events; text stays text', async (t) => {
    const ctx = await browser(t);
    if (!ctx) return;
    const f = await fleet();
    const s = await serve(f);
    const { page, dialogs, errors, external } = await open(ctx, s.url);

    // The fleet: build2's heartbeat is an hour old.
    assert.equal(await page.getAttribute('[data-builder="build2"]', 'data-health'), 'stale');
    assert.equal(await text(page, '[data-builder="build2"] .health'), 'stale');
    assert.equal(await text(page, '[data-builder="build1"] .health'), 'healthy');
    assert.equal(await text(page, '[data-builder="build1"] .job-id'), f.ids.running);
    assert.ok(seconds(await text(page, '[data-builder="build1"] .job-elapsed')) >= 125);
    assert.equal(await text(page, '[data-builder="build1"] .distcc'), 'pump');
    assert.equal(await text(page, '[data-builder="build1"] .version'), '0.1.0');
    assert.equal(await page.getAttribute('[data-builder="build2"]', 'data-state'), 'failed');

    // The queue in run order: the running job first, with its builder and elapsed time.
    const order = await page.locator('#queue-body tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job')));
    assert.deepEqual(order, [f.ids.running, f.ids.xss, f.ids.blocked]);
    const runningRow = `#queue-body tr[data-job="${f.ids.running}"]`;
    assert.equal(await text(page, `${runningRow} .builder`), 'build1');
    assert.equal(await text(page, `${runningRow} .status`), 'running');
    const elapsed = seconds(await text(page, `${runningRow} .elapsed .tick`));
    assert.ok(elapsed >= 125 && elapsed < 3600, `elapsed ${elapsed}s`);
    assert.equal(await text(page, `#queue-body tr[data-job="${f.ids.blocked}"] .status`), 'waiting');

    // History: the failed job is marked failed, with its duration and summary.
    const failedRow = `#history-body tr[data-job="${f.ids.failed}"]`;
    assert.equal(await text(page, `${failedRow} .result`), 'failed');
    assert.equal(await text(page, `${failedRow} .duration`), '42s');
    assert.match(await text(page, `${failedRow} .desc`), /dpkg-buildpackage exited 2/);
    assert.equal(await text(page, `#history-body tr[data-job="${f.ids.done1}"] .result`), 'completed');

    // The chart: one row per job type, one bar per build.
    assert.deepEqual(await page.locator('#durations text.label').allTextContents(), ['deb', 'make']);
    assert.equal(await page.locator('#durations rect.bar').count(), 3);
    assert.equal(await page.locator('#durations rect.bar-failed').count(), 1);

    // Events from the commits' trailers; messages and locks.
    assert.ok((await page.locator('#events li[data-kind="claim"]').count()) >= 4);
    assert.equal(await page.locator('#events li[data-kind="failed"]').count(), 1);
    assert.match(await text(page, '#messages'), /disk almost full on build2/);
    assert.match(await text(page, '#locks-body tr[data-lock="deploy"]'), /release 2\.1 rollout/);

    // The job description that is markup is shown as its text, and nothing ran.
    assert.equal(await text(page, `#queue-body tr[data-job="${f.ids.xss}"] .desc`), XSS);
    assert.equal(await page.locator('script').count(), 1, 'only the page script');
    assert.deepEqual(dialogs, []);

    // Live: the elapsed time keeps counting between polls.
    const before = seconds(await text(page, `${runningRow} .elapsed .tick`));
    await page.waitForTimeout(2200);
    assert.ok(seconds(await text(page, `${runningRow} .elapsed .tick`)) > before);
    assert.equal(await page.getAttribute('#conn', 'class'), 'dot ok');
    // Live: a change pushed to the repository shows up by itself, through the page's polling, without a reload.
    const sent = await f.cli(['msg', 'send', '--to', 'all', '--type', 'info', '--subject', 'dashboard live check']);
    assert.equal(sent.exitCode, 0, sent.stderr);
    await page.waitForFunction(() => document.querySelector('#messages')?.textContent?.includes('dashboard live check'), undefined, { timeout: 15_000 });

    await mkdir(join(repoRoot(), 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(repoRoot(), 'test-artifacts', 'dashboard.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no console errors (a CSP violation would be one)');
    assert.deepEqual(external, [], 'no request leaves 127.0.0.1');
    await page.close();
    assert.equal(await s.stop(), 0, s.stderr());
  });

  it('GET /api/fleet matches schemas/dashboard-api.json; concurrent requests share one read', async () => {
    const f = await fleet();
    const s = await serve(f, ['--refresh', '5s']);
    const answers = await Promise.all(Array.from({ length: 8 }, () => getJson(new URL('api/fleet', s.url).href)));
    for (const a of answers) assert.equal(a.status, 200);
    assert.equal(new Set(answers.map((a) => a.body.generated_at)).size, 1, 'one snapshot for all of them');
    const validate = apiValidator();
    const data = answers[0]!.body;
    assert.deepEqual(validate(data), []);
    assert.deepEqual(Object.fromEntries(data.builders.map((b) => [b.builder, b.health])), { build1: 'healthy', build2: 'stale' });
    assert.equal(data.queue.jobs[0]!.assigned_to, 'build1');
    assert.deepEqual(data.queue.counts, { queued: 2, running: 1, completed: 2, failed: 1, cancelled: 0 });
    assert.equal(data.history.find((h) => h.id === f.ids.failed)!.status, 'failed');
    assert.equal(data.actions_enabled, false);
    // A web page elsewhere cannot read it through a rebound DNS name.
    assert.equal(await getWithHost(s.url, 'attacker.example:80'), 421);
    assert.equal(await getWithHost(s.url, `localhost:${new URL(s.url).port}`), 200);
    assert.equal((await fetch(new URL('nope', s.url))).status, 404);
    assert.equal(await s.stop(), 0);
  });

  it('write actions are off by default: refused, nothing changes', async () => {
    const f = await fleet();
    const s = await serve(f, [], { BUILDCOORD_DASHBOARD_TOKEN: TOKEN });
    const r = await post(s.url, { action: 'cancel', job: f.ids.blocked }, TOKEN);
    assert.equal(r.status, 403);
    assert.match(String(r.body.error), /--allow-actions/);
    assert.equal((await jobsOnMain(f.repo)).find((j) => j.id === f.ids.blocked)!.status, 'queued');
    assert.equal(await s.stop(), 0);
    const noToken = await runCli(['dashboard', '--allow-actions', '--port', '0', '--repo', f.repo]);
    assert.equal(noToken.exitCode, 2, 'no token: usage error, nothing served');
    assert.match(noToken.stderr, /needs a token/);
  });

  it('with --allow-actions: no or a wrong token is 401; the token cancels, retries, pauses and resumes', async () => {
    const f = await fleet();
    const tokenFile = join(f.base, 'dashboard.token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const s = await serve(f, ['--allow-actions', '--token-file', tokenFile]);
    const id = (await f.cli(['job', 'add', '--type', 'make', '--description', 'to be cancelled'])).stdout.trim();

    assert.equal((await post(s.url, { action: 'cancel', job: id })).status, 401);
    assert.equal((await post(s.url, { action: 'cancel', job: id }, `${TOKEN}x`)).status, 401);
    assert.equal((await post(s.url, { action: 'cancel', job: id }, 'short')).status, 401);
    assert.equal((await jobsOnMain(f.repo)).find((j) => j.id === id)!.status, 'queued', 'refused means unchanged');
    assert.equal((await post(s.url, { action: 'explode', job: id }, TOKEN)).status, 400);
    assert.equal((await post(s.url, { action: 'cancel', job: '../etc' }, TOKEN)).status, 400);

    const before = await getJson(new URL('api/fleet', s.url).href);
    assert.equal(before.body.actions_enabled, true);
    const ok = await post(s.url, { action: 'cancel', job: id }, TOKEN);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.match(String(ok.body.message), /cancelled/);
    const cancelled = (await jobsOnMain(f.repo)).find((j) => j.id === id)!;
    assert.equal(cancelled.status, 'cancelled');
    const log = await git(f.repo, 'log', '-1', '--format=%B', 'main');
    assert.match(log, /Coord-Op: cancel/);
    assert.match(log, new RegExp(`Coord-Job: ${id}`));
    // The next read is fresh, not the snapshot from before the action.
    const after = await getJson(new URL('api/fleet', s.url).href);
    assert.equal(after.body.history.find((h) => h.id === id)?.status, 'cancelled');
    assert.equal((await post(s.url, { action: 'cancel', job: id }, TOKEN)).status, 409, 'already cancelled');

    assert.equal((await post(s.url, { action: 'retry', job: id }, TOKEN)).status, 200);
    assert.equal((await jobsOnMain(f.repo)).find((j) => j.id === id)!.status, 'queued');
    assert.equal((await post(s.url, { action: 'cancel', job: id }, TOKEN)).status, 200);

    assert.equal((await post(s.url, { action: 'pause', builder: 'build2' }, TOKEN)).status, 200);
    const config = JSON.parse(await git(f.repo, 'show', 'main:shared/build_config.json')) as { control: { builders: Record<string, { paused: boolean }> } };
    assert.equal(config.control.builders.build2!.paused, true);
    const paused = await getJson(new URL('api/fleet', s.url).href);
    assert.equal(paused.body.builders.find((b) => b.builder === 'build2')!.paused, true);
    assert.equal((await post(s.url, { action: 'resume', builder: 'build2' }, TOKEN)).status, 200);
    const resumed = JSON.parse(await git(f.repo, 'show', 'main:shared/build_config.json')) as { control: { builders?: Record<string, unknown> } };
    assert.equal(resumed.control.builders?.build2, undefined);
    assert.match(s.stderr(), /action cancel/);
    assert.equal(await s.stop(), 0);
  });

  it('--out writes one static page with the data embedded, no external URL, markup escaped', async (t) => {
    const f = await fleet();
    const file = join(f.base, 'fleet.html');
    const r = await runCli(['dashboard', '--out', file, '--repo', f.repo]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim(), file);
    const html = await readFile(file, 'utf8');
    for (const id of Object.values(f.ids)) assert.ok(html.includes(id), `${id} is in the page`);
    assert.doesNotMatch(html, /https?:\/\//i, 'no URL at all: nothing to fetch from anywhere');
    assert.doesNotMatch(html, /\b(src|href)\s*=/i);
    assert.ok(!html.includes(XSS), 'the markup in the description is not in the page as markup');
    assert.equal(html.match(/<script\b/g)?.length, 2, 'the data block and the page script');
    const embedded = /<script type="application\/json" id="dashboard-data">([^<]*)<\/script>/.exec(html);
    assert.ok(embedded);
    const data = JSON.parse(embedded[1]!) as DashboardData;
    assert.deepEqual(apiValidator()(data), []);
    assert.equal(data.queue.jobs.find((j) => j.id === f.ids.xss)!.description, XSS);

    const ctx = await browser(t);
    if (!ctx) return;
    const { page, dialogs, errors, external } = await open(ctx, pathToFileURL(file).href);
    assert.equal(await text(page, '[data-builder="build2"] .health'), 'stale');
    assert.equal(await text(page, `#history-body tr[data-job="${f.ids.failed}"] .result`), 'failed');
    assert.equal(await text(page, `#queue-body tr[data-job="${f.ids.xss}"] .desc`), XSS);
    assert.match(await text(page, '#updated'), /^snapshot of /);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
    assert.deepEqual(external, []);
    await page.close();
  });

  it('updateHealthDashboard writes shared/health_dashboard.json once, then nothing while the fleet is unchanged', async () => {
    const f = await fleet();
    const store = new Store({ remote: f.repo, home: join(f.base, 'hd'), actor: 'build1' });
    onCleanup(() => store.close());
    const first = await updateHealthDashboard(store, { staleAfterMs: 300_000 });
    assert.equal(first.result.changed, true);
    assert.ok(first.commit);
    const onMain = JSON.parse(await git(f.repo, 'show', 'main:shared/health_dashboard.json')) as HealthDashboardFile;
    assert.deepEqual(validateDoc('shared/health_dashboard.json', onMain), []);
    assert.deepEqual(onMain.builders, {
      build1: { state: 'building', health: 'healthy', current_job: f.ids.running, last_build: f.ids.done2 },
      build2: { state: 'failed', health: 'stale', current_job: null, last_build: f.ids.failed },
    });
    assert.equal(onMain.queue.running, 1);
    assert.equal(onMain.queue.failed, 1);
    const tip = await git(f.repo, 'rev-parse', 'main');
    // Later, same fleet: the heartbeat ages differ, the content does not.
    const again = await updateHealthDashboard(store, { staleAfterMs: 300_000, now: () => new Date(Date.now() + 5000) });
    assert.equal(again.result.changed, false);
    assert.equal(again.commit, null);
    assert.equal(await git(f.repo, 'rev-parse', 'main'), tip, 'no commit for an unchanged summary');
    // A fresh process (no names remembered) finds the builders from main's listing too.
    const other = new Store({ remote: f.repo, home: join(f.base, 'hd2'), actor: 'build2' });
    onCleanup(() => other.close());
    const third = await updateHealthDashboard(other, { staleAfterMs: 300_000, heartbeats: new Map() });
    assert.equal(third.result.changed, true, 'without heartbeats both builders are unknown: a real change');
    assert.deepEqual(Object.keys(third.result.summary.builders), ['build1', 'build2']);
    assert.equal(third.result.summary.builders.build1!.health, 'unknown');
  });
});

describe('dashboard pieces', () => {
  it('summarize ignores time and key order; sameSummary compares content', () => {
    const status = (over: Partial<StatusFile>): StatusFile => ({ server: 'b', timestamp: '2025-01-01T00:00:00Z', status: 'idle', current_job: null, last_build: null, system: { cpu_usage: null, memory_used_gb: null, disk_free_gb: null }, ...over });
    const hb = { server: 'b1', timestamp: '2025-01-01T00:00:00Z', uptime_seconds: 1, healthy: true };
    const jobs: JobsFile = { version: 1, jobs: [] };
    const t0 = new Date('2025-01-01T00:01:00Z');
    const a = summarize(new Map([['b1', status({})]]), new Map([['b1', hb]]), jobs, t0, 300_000);
    const b = summarize(new Map([['b1', status({ timestamp: '2025-01-01T00:00:59Z' })]]), new Map([['b1', { ...hb, timestamp: '2025-01-01T00:00:30Z' }]]), jobs, new Date(t0.getTime() + 60_000), 300_000);
    assert.ok(sameSummary(a, b));
    const reordered = JSON.parse(JSON.stringify({ queue: a.queue, builders: a.builders, version: 1, $schema: a.$schema })) as HealthDashboardFile;
    assert.ok(sameSummary(reordered, b));
    const stale = summarize(new Map([['b1', status({})]]), new Map([['b1', hb]]), jobs, new Date(t0.getTime() + 600_000), 300_000);
    assert.equal(stale.builders.b1!.health, 'stale');
    assert.ok(!sameSummary(a, stale));
    assert.ok(!sameSummary(undefined, a));
  });

  it('parseEvents reads trailers, drops bookkeeping, keeps hand edits', () => {
    const sha = (c: string) => c.repeat(40);
    const rec = (s: string, date: string, subject: string, trailers: string) => `${s}\x1f${date}\x1f${subject}\x1f${trailers}\x1e\n`;
    const log =
      rec(sha('a'), '2025-01-01T10:00:00+01:00', 'failed job_x on build2 (attempt 2): boom', 'Coord-Op: complete\nCoord-Builder: build2\nCoord-Job: job_x\nCoord-Attempt: 2\nCoord-Result: failed\nCoord-Nonce: 1\n') +
      rec(sha('b'), '2025-01-01T09:00:00Z', 'mark read', 'Coord-Op: message-read\nCoord-Builder: build1\n') +
      rec(sha('c'), '2025-01-01T08:00:00Z', 'raise priority', '') +
      rec(sha('d'), '2025-01-01T07:00:00Z', 'reclaim job_y, job_z from stale builders', 'Coord-Op: reclaim\nCoord-Builder: build1\nCoord-Job: job_y job_z\n');
    const ev = parseEvents(log);
    assert.deepEqual(
      ev.map((e) => [e.kind, e.op, e.jobs, e.builder, e.attempt, e.at]),
      [
        ['failed', 'complete', ['job_x'], 'build2', 2, '2025-01-01T09:00:00.000Z'],
        ['edit', null, [], null, null, '2025-01-01T08:00:00.000Z'],
        ['reclaim', 'reclaim', ['job_y', 'job_z'], 'build1', null, '2025-01-01T07:00:00.000Z'],
      ],
    );
    assert.ok(EVENT_LOG_FORMAT.includes('%(trailers'));
  });

  it('the snapshot cache: one load for concurrent gets, again after the ttl or an invalidate', async () => {
    let now = 0;
    let loads = 0;
    let release: (() => void) | undefined;
    const cache = new SharedSnapshot(
      () =>
        new Promise<number>((r) => {
          loads++;
          release = () => r(loads);
        }),
      3000,
      () => now,
    );
    const many = Array.from({ length: 20 }, () => cache.get());
    release!();
    assert.deepEqual(new Set(await Promise.all(many)), new Set([1]));
    assert.equal(loads, 1);
    now = 2999;
    assert.equal(await cache.get(), 1);
    now = 3000;
    const p = cache.get();
    release!();
    assert.equal(await p, 2);
    cache.invalidate();
    const q = cache.get();
    release!();
    assert.equal(await q, 3);
  });

  it('tokens, action bodies and embedded JSON', () => {
    assert.ok(tokenMatches(TOKEN, TOKEN));
    assert.ok(!tokenMatches(undefined, TOKEN));
    assert.ok(!tokenMatches(TOKEN.slice(1), TOKEN));
    assert.ok(!tokenMatches('', ''));
    assert.deepEqual(parseAction({ action: 'pause' }), { action: 'pause', builder: null });
    assert.deepEqual(parseAction({ action: 'retry', job: 'job_1' }), { action: 'retry', job: 'job_1' });
    assert.throws(() => parseAction({ action: 'pause', job: 'job_1' }), /takes "builder"/);
    assert.throws(() => parseAction({ action: 'cancel', job: 'job_1', extra: 1 }), /unknown field/);
    assert.throws(() => parseAction([]), /JSON object/);
    const embedded = scriptSafeJson({ d: '</script><!-- \u2028 &' });
    assert.ok(!/[<>&\u2028]/.test(embedded));
    assert.deepEqual(JSON.parse(embedded), { d: '</script><!-- \u2028 &' });
  });
});
