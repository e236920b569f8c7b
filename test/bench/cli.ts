// CLI latency (issue 3): what a person or a script waits for when it runs one
// `buildcoord` command.
//
// (a) `job add` and `msg send` as real child processes (node dist/agent/cli/main.js,
//     --repo a file:// bare repository, a warm private clone under their own
//     BUILDCOORD_HOME) against, in the same run and on the same remote, the same
//     change made with plain git in a non-bare clone (fetch, reset --hard, edit the
//     JSON in-process, commit -am, push), interleaved so drift in machine load
//     favours neither. `node -e 0` and `buildcoord --version` give the floor.
//     A few extra runs under GIT_TRACE2_EVENT, spread over the rounds, say where
//     a call's time goes. The CLI runs from a copy of dist/ (see cliSnapshot).
// (b) `status` and `job list` on a fleet of 8 builders (status files, heartbeat
//     branches) with 1,000 queued jobs.
//
// Settings (environment): BENCH_CLI_RUNS (default 15), BENCH_STATUS_RUNS (default 7),
// BENCH_STATUS_JOBS (default 1000).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, cp, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { canonicalJson } from '../../agent/model/canonical.js';
import * as jobs from '../../agent/model/jobs.js';
import * as msgs from '../../agent/model/messages.js';
import { PATHS, type HeartbeatFile, type JobsFile, type MessagesFile } from '../../agent/model/types.js';
import { schemaFor } from '../../agent/model/validate.js';
import { HeartbeatWriter } from '../../agent/store/heartbeat.js';
import { initLayout } from '../../agent/store/layout.js';
import { addJobs } from '../../agent/store/ops.js';
import { Store } from '../../agent/store/store.js';
import { git, makeBareRepo, onCleanup } from '../helpers/git.js';
import type { BenchContext, BenchSection, Cell, SectionResult, TargetCheck } from './main.js';

// ---------------------------------------------------------------- shared helpers (agent.ts uses them too)

export function quantile(values: number[], q: number): number {
  if (!values.length) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  // Nearest rank: of 15 samples, p95 is the largest (rank ceil(0.95 * 15) = 15).
  const rank = Math.max(1, Math.ceil(q * s.length));
  return s[rank - 1]!;
}

export const median = (v: number[]) => {
  if (!v.length) return Number.NaN;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function intEnv(name: string, fallback: number, min = 1): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, not ${text}`);
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const live = new Set<number>();
let killerRegistered = false;

/** Registers a PID we started so an error or interrupt never leaves it running; only ours, by PID. */
export function track(pid: number | undefined): void {
  if (pid === undefined) return;
  if (!killerRegistered) {
    killerRegistered = true;
    onCleanup(() => {
      killerRegistered = false;
      for (const p of live) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      live.clear();
    });
  }
  live.add(pid);
}

export function untrack(pid: number | undefined): void {
  if (pid !== undefined) live.delete(pid);
}

export interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
  /** Date.now() just before the spawn: to line a trace up with this run. */
  spawnedAt: number;
}

/** Runs a program to its end; wall time from just before the spawn to 'close' (stdio drained). */
export function timeChild(command: string, args: string[], env: Record<string, string>, cwd?: string, timeoutMs = 60_000): Promise<Timed> {
  return new Promise((resolve) => {
    const spawnedAt = Date.now();
    const t0 = performance.now();
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      untrack(child.pid);
      resolve({ ms: performance.now() - t0, code, stdout, stderr, spawnedAt });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      untrack(child.pid);
      resolve({ ms: performance.now() - t0, code: null, stdout, stderr: stderr + String(e), spawnedAt });
    });
  });
}

/** git in a directory, for the raw side and for inspecting remotes; throws on failure. */
export function gitRaw(cwd: string, env: Record<string, string>, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`git ${args.join(' ')} (in ${cwd}): ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/**
 * A private copy of the compiled CLI (dist/agent plus what packageRoot() looks
 * for; node_modules linked). Other people rebuild dist/ while a bench runs, and
 * tsc rewrites a file in place: a child started at that moment reads half a
 * module and dies. The copy is checked with --version before it is used.
 */
export async function cliSnapshot(ctx: BenchContext): Promise<string> {
  let last = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = await ctx.tmpDir('cli-snapshot-');
    await cp(path.join(ctx.root, 'dist', 'agent'), path.join(dir, 'dist', 'agent'), { recursive: true });
    await cp(path.join(ctx.root, 'package.json'), path.join(dir, 'package.json'));
    for (const d of ['schemas', 'coordination', 'shared', 'patches']) {
      const from = path.join(ctx.root, d);
      if (await access(from).then(() => true, () => false)) await cp(from, path.join(dir, d), { recursive: true });
    }
    await symlink(path.join(ctx.root, 'node_modules'), path.join(dir, 'node_modules'));
    const cli = path.join(dir, 'dist', 'agent', 'cli', 'main.js');
    const check = await timeChild(process.execPath, [cli, '--version'], ctx.env);
    if (check.code === 0) return cli;
    last = errorLines(check.stderr);
    ctx.log(`cli snapshot ${attempt} does not run (${last}); copying again`);
    await sleep(2000);
  }
  throw new Error(`the compiled CLI in dist/ does not run: ${last}`);
}

/** The lines of a child's stderr that say what went wrong (node's own crash report ends with its version). */
export function errorLines(stderr: string): string {
  const lines = stderr.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  const errs = lines.filter((l) => /error|cannot|failed|fatal/i.test(l) && !/^at /.test(l));
  return (errs.length ? errs.slice(0, 3) : lines.slice(-3)).join(' / ').slice(0, 400) || '(no stderr)';
}

function stats(values: number[]) {
  return { n: values.length, median: median(values), p95: quantile(values, 0.95), min: values.length ? Math.min(...values) : Number.NaN, max: values.length ? Math.max(...values) : Number.NaN };
}

// ---------------------------------------------------------------- git trace2: where a call's time goes

export interface TraceProc {
  sid: string;
  argv: string[];
  start: number; // epoch ms, sub-ms precision
  end: number | null;
}

function isoMicros(text: string): number {
  // "2026-11-23T15:26:32.258123Z": Date.parse keeps only milliseconds.
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(text);
  if (!m) return Date.parse(text);
  const frac = m[2] ?? '0';
  return Date.parse(`${m[1]}Z`) + Number(`0.${frac}`) * 1000;
}

export async function readTrace(file: string): Promise<TraceProc[]> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const procs = new Map<string, TraceProc>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let e: { event?: string; sid?: string; time?: string; argv?: string[] };
    try {
      e = JSON.parse(line);
    } catch {
      continue;
    }
    // Only the processes the CLI spawned itself; their children (upload-pack, receive-pack) are inside them.
    if (!e.sid || e.sid.includes('/') || !e.time) continue;
    if (e.event === 'start') procs.set(e.sid, { sid: e.sid, argv: e.argv ?? [], start: isoMicros(e.time), end: null });
    else if ((e.event === 'exit' || e.event === 'atexit') && procs.has(e.sid)) procs.get(e.sid)!.end = isoMicros(e.time);
  }
  return [...procs.values()].sort((a, b) => a.start - b.start);
}

/** The git subcommand of an argv: git --git-dir X fetch ... -> "fetch". */
export function gitVerb(argv: string[]): string {
  const rest = argv.slice(1);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--git-dir' || a === '--work-tree' || a === '--namespace' || a === '-C' || a === '-c') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return a;
  }
  return '?';
}

export interface Breakdown {
  total: number;
  /** Spawn to the first git: node startup, module loading, yargs, config. */
  beforeGit: number;
  /** Sum of the short-lived git processes (everything but cat-file --batch). */
  git: number;
  /** Gaps between those gits: the in-process work of the transaction. */
  between: number;
  /** Last git's end to the process's end: closing cat-file, flushing, exiting. */
  after: number;
  gitProcs: number;
  /** verb -> ms, in order of first appearance. */
  verbs: Array<[string, number]>;
}

function breakdown(run: Timed, procs: TraceProc[]): Breakdown | null {
  const short = procs.filter((p) => p.end !== null && gitVerb(p.argv) !== 'cat-file');
  if (!short.length) return null;
  const first = Math.min(...procs.map((p) => p.start));
  const lastEnd = Math.max(...short.map((p) => p.end!));
  // The union of the short gits' intervals (they may overlap, e.g. a concurrent read).
  let git = 0;
  let cursor = -Infinity;
  for (const p of short) {
    const s = Math.max(p.start, cursor);
    if (p.end! > s) git += p.end! - s;
    cursor = Math.max(cursor, p.end!);
  }
  const beforeGit = first - run.spawnedAt;
  const span = lastEnd - first;
  const verbs = new Map<string, number>();
  for (const p of short) verbs.set(gitVerb(p.argv), (verbs.get(gitVerb(p.argv)) ?? 0) + (p.end! - p.start));
  return { total: run.ms, beforeGit, git, between: Math.max(0, span - git), after: Math.max(0, run.ms - (lastEnd - run.spawnedAt)), gitProcs: procs.length, verbs: [...verbs.entries()] };
}

function medianBreakdown(list: Breakdown[]): Breakdown | null {
  if (!list.length) return null;
  const m = (f: (b: Breakdown) => number) => median(list.map(f));
  const verbNames = [...new Set(list.flatMap((b) => b.verbs.map(([v]) => v)))];
  return {
    total: m((b) => b.total),
    beforeGit: m((b) => b.beforeGit),
    git: m((b) => b.git),
    between: m((b) => b.between),
    after: m((b) => b.after),
    gitProcs: m((b) => b.gitProcs),
    verbs: verbNames.map((v) => [v, m((b) => b.verbs.find(([x]) => x === v)?.[1] ?? 0)]),
  };
}

export function describeBreakdown(label: string, b: Breakdown | null): string {
  if (!b) return `${label}: no git trace recorded`;
  const f = (x: number) => `${Math.round(x)}`;
  return `${label} (median of traced runs): ${f(b.total)} ms = ${f(b.beforeGit)} before the first git (node start, imports, yargs, config) + ${f(b.git)} in git [${b.verbs.map(([v, ms]) => `${v} ${f(ms)}`).join(', ')}] + ${f(b.between)} in-process between gits + ${f(b.after)} after the last git (exit); ${b.gitProcs} git processes`;
}

// ---------------------------------------------------------------- the section

function jobDraft(i: number): jobs.JobInput & { id: string } {
  return { id: jobs.newId('job', new Date(), randomBytes(5)), type: 'make', priority: 5, source: null, branch: 'main', commit: null, description: `raw bench job ${i}`, dependencies: [], timeout_seconds: null, retries: 0 };
}

interface RawSteps {
  fetch: number;
  reset: number;
  edit: number;
  commit: number;
  push: number;
  total: number;
}

/** The plain-git change a person would script: fetch, reset, edit, commit, push; timed per step. */
async function rawChange(work: string, env: Record<string, string>, kind: 'job' | 'msg', i: number): Promise<RawSteps> {
  const t = [performance.now()];
  await gitRaw(work, env, 'fetch', '--quiet', 'origin');
  t.push(performance.now());
  await gitRaw(work, env, 'reset', '--quiet', '--hard', 'origin/main');
  t.push(performance.now());
  let message: string;
  const now = new Date();
  if (kind === 'job') {
    const file = path.join(work, PATHS.jobs);
    const doc = JSON.parse(await readFile(file, 'utf8')) as JobsFile;
    const r = jobs.enqueueMany(doc, [jobDraft(i)], 'rawbench', now);
    await writeFile(file, canonicalJson(r.file, schemaFor(PATHS.jobs)));
    message = `enqueue make job ${r.jobs[0]!.id} (main)\n\nCoord-Op: enqueue\nCoord-Builder: rawbench\nCoord-Job: ${r.jobs[0]!.id}\nCoord-Nonce: ${randomBytes(8).toString('hex')}\n`;
  } else {
    const file = path.join(work, PATHS.messages);
    const doc = JSON.parse(await readFile(file, 'utf8')) as MessagesFile;
    const r = msgs.send(doc, { to: 'build2', type: 'info', subject: 'x', body: '' }, jobs.newId('msg', now, randomBytes(5)), 'rawbench', now);
    await writeFile(file, canonicalJson(r.file, schemaFor(PATHS.messages)));
    message = `info rawbench -> build2: x\n\nCoord-Op: message\nCoord-Builder: rawbench\nCoord-Message: ${r.message.id}\nCoord-Nonce: ${randomBytes(8).toString('hex')}\n`;
  }
  t.push(performance.now());
  await gitRaw(work, env, 'commit', '--quiet', '--no-verify', '-a', '-m', message);
  t.push(performance.now());
  // Nobody else pushes during the measurement, so a rejection would be a bench bug.
  await gitRaw(work, env, 'push', '--quiet', '--no-verify', 'origin', 'HEAD:refs/heads/main');
  t.push(performance.now());
  const d = (a: number, b: number) => t[b]! - t[a]!;
  return { fetch: d(0, 1), reset: d(1, 2), edit: d(2, 3), commit: d(3, 4), push: d(4, 5), total: d(0, 5) };
}

function heartbeatDoc(builder: string, now: Date, i: number): HeartbeatFile {
  return {
    $schema: '../schemas/heartbeat.schema.json',
    server: builder,
    timestamp: now.toISOString(),
    uptime_seconds: 3600 + i,
    healthy: true,
    degraded_reasons: [],
    system: { cpu_usage: 12.5, memory_used_gb: 3.2, disk_free_gb: 120.5, load: [0.5, 0.4, 0.3] },
    agent_version: '0.1.0',
    current_jobs: [],
    leases: [],
  };
}

type Row = Record<string, Cell>;

function row(operation: string, values: number[], extra: Partial<Row> = {}): Row {
  const s = stats(values);
  return { operation, n: s.n, median_ms: s.median, p95_ms: s.p95, min_ms: s.min, max_ms: s.max, vs_raw_ms: null, ...extra };
}

export const cliSection: BenchSection = {
  name: 'cli',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const runs = intEnv('BENCH_CLI_RUNS', 15);
    const statusRuns = intEnv('BENCH_STATUS_RUNS', 7);
    const fleetJobs = intEnv('BENCH_STATUS_JOBS', 1000);
    const traced = 5;
    const violations: string[] = [];
    const node = process.execPath;
    const cli = await cliSnapshot(ctx);

    // ---------------------------------------------------------- (a) job add / msg send
    const remote = await makeBareRepo({ parent: await ctx.tmpDir('cli-remote-') });
    const seeder = new Store({ remote: remote.url, home: await ctx.tmpDir('cli-seed-home-'), actor: 'bench' });
    await initLayout(seeder, ['build1', 'build2']);
    seeder.close();

    const home = await ctx.tmpDir('cli-home-');
    const cliEnv = { ...ctx.env, BUILDCOORD_HOME: home, NO_COLOR: '1' };
    const traceDir = await ctx.tmpDir('cli-trace-');
    const addArgs = [cli, 'job', 'add', '--type', 'make', '--repo', remote.url];
    const msgArgs = [cli, 'msg', 'send', '--to', 'build2', '--type', 'info', '--subject', 'x', '--repo', remote.url];
    const work = path.join(await ctx.tmpDir('cli-raw-'), 'work');
    await git(path.dirname(work), 'clone', '--quiet', remote.url, work);

    const checked = (what: string, r: Timed): Timed => {
      if (r.code !== 0) violations.push(`${what} exited ${r.code}: ${errorLines(r.stderr)}`);
      return r;
    };

    // Warm-up, untimed: the first call makes the private clone; node's and git's files get cached.
    ctx.log('cli: warm-up');
    for (let i = 0; i < 2; i++) {
      checked('warm-up job add', await timeChild(node, addArgs, cliEnv));
      checked('warm-up msg send', await timeChild(node, msgArgs, cliEnv));
      await rawChange(work, ctx.env, 'job', -1);
      await rawChange(work, ctx.env, 'msg', -1);
      await timeChild(node, ['-e', '0'], ctx.env);
    }

    // Where the time goes: runs with git's trace2 events, spread over the rounds below
    // so they see the same machine load (not in the timed figures).
    const traceRun = async (label: string, args: string[], env: Record<string, string>, i: number): Promise<Breakdown | null> => {
      const file = path.join(traceDir, `${label.replace(/\W+/g, '-')}-${i}.json`);
      const r = checked(`traced ${label}`, await timeChild(node, args, { ...env, GIT_TRACE2_EVENT: file }));
      return r.code === 0 ? breakdown(r, await readTrace(file)) : null;
    };
    const addTraces: Breakdown[] = [];
    const msgTraces: Breakdown[] = [];
    const traceEvery = Math.max(1, Math.floor(runs / traced));
    const nodeBare: number[] = [];
    const version: number[] = [];
    const bcAdd: number[] = [];
    const bcMsg: number[] = [];
    const rawAdd: RawSteps[] = [];
    const rawMsg: RawSteps[] = [];
    ctx.log(`cli: ${runs} rounds of node -e 0, --version, job add and msg send (buildcoord and raw git, interleaved)`);
    for (let i = 0; i < runs; i++) {
      nodeBare.push((await timeChild(node, ['-e', '0'], ctx.env)).ms);
      version.push(checked('--version', await timeChild(node, [cli, '--version'], cliEnv)).ms);
      // Alternate which side goes first.
      const pairs: Array<() => Promise<void>> = [
        async () => void bcAdd.push(checked('job add', await timeChild(node, addArgs, cliEnv)).ms),
        async () => void rawAdd.push(await rawChange(work, ctx.env, 'job', i)),
        async () => void bcMsg.push(checked('msg send', await timeChild(node, msgArgs, cliEnv)).ms),
        async () => void rawMsg.push(await rawChange(work, ctx.env, 'msg', i)),
      ];
      const order = i % 2 === 0 ? [0, 1, 2, 3] : [1, 0, 3, 2];
      for (const k of order) await pairs[k]!();
      if (i % traceEvery === traceEvery - 1 && addTraces.length < traced) {
        const a = await traceRun('job add', addArgs, cliEnv, i);
        if (a) addTraces.push(a);
        const m = await traceRun('msg send', msgArgs, cliEnv, i);
        if (m) msgTraces.push(m);
      }
    }
    const addTrace = medianBreakdown(addTraces);
    const msgTrace = medianBreakdown(msgTraces);

    // ---------------------------------------------------------- (b) status on 8 builders, 1,000 jobs
    ctx.log(`cli: seeding a fleet of 8 builders with ${fleetJobs} queued jobs`);
    const builders = Array.from({ length: 8 }, (_, i) => `build${i + 1}`);
    const fleetRemote = await makeBareRepo({ parent: await ctx.tmpDir('cli-fleet-') });
    const fleetSeeder = new Store({ remote: fleetRemote.url, home: await ctx.tmpDir('cli-fleet-seed-'), actor: 'bench' });
    await initLayout(fleetSeeder, builders);
    const now = new Date();
    for (const [i, b] of builders.entries()) await new HeartbeatWriter(fleetSeeder, b).write(heartbeatDoc(b, now, i));
    await addJobs(
      fleetSeeder,
      Array.from({ length: fleetJobs }, (_, i) => ({ type: 'make', priority: 1 + (i % 10), source: `https://git.example.org/app${i % 7}.git`, branch: 'main', commit: null, description: `fleet job ${i}`, dependencies: [], timeout_seconds: null, retries: 0 })),
    );
    fleetSeeder.close();
    const jobsBytes = (await git(fleetRemote.dir, 'cat-file', '-s', `refs/heads/main:${PATHS.jobs}`)).trim();
    const heads = (await git(fleetRemote.dir, 'for-each-ref', '--format=%(refname)', 'refs/heads/heartbeat/')).split('\n').filter(Boolean).length;
    if (heads !== builders.length) violations.push(`fleet seed: ${heads} heartbeat branches, expected ${builders.length}`);

    const fleetHome = await ctx.tmpDir('cli-fleet-home-');
    const fleetEnv = { ...ctx.env, BUILDCOORD_HOME: fleetHome, NO_COLOR: '1' };
    const statusArgs = [cli, 'status', '--repo', fleetRemote.url];
    const listArgs = [cli, 'job', 'list', '--repo', fleetRemote.url];
    const first = checked('status (cold clone)', await timeChild(node, statusArgs, fleetEnv));
    const rowsShown = first.stdout.split('\n').filter((l) => /^build\d/.test(l)).length;
    if (rowsShown !== builders.length) violations.push(`status showed ${rowsShown} builder rows, expected ${builders.length}: ${first.stdout.slice(0, 300)}`);
    if (!new RegExp(`${fleetJobs} queued`).test(first.stdout)) violations.push(`status did not report ${fleetJobs} queued jobs: ${first.stdout.split('\n').slice(-3).join(' / ')}`);
    checked('job list (warm-up)', await timeChild(node, listArgs, fleetEnv));
    ctx.log(`cli: ${statusRuns} runs each of status and job list`);
    const status: number[] = [];
    const list: number[] = [];
    const statusTraces: Breakdown[] = [];
    const listTraces: Breakdown[] = [];
    let listLines = 0;
    for (let i = 0; i < statusRuns; i++) {
      status.push(checked('status', await timeChild(node, statusArgs, fleetEnv)).ms);
      const l = checked('job list', await timeChild(node, listArgs, fleetEnv));
      list.push(l.ms);
      listLines = l.stdout.split('\n').filter((x) => x.startsWith('job_')).length;
      if (i % 2 === 1) {
        const st = await traceRun('status', statusArgs, fleetEnv, i);
        if (st) statusTraces.push(st);
        const lt = await traceRun('job list', listArgs, fleetEnv, i);
        if (lt) listTraces.push(lt);
      }
    }
    if (listLines !== fleetJobs) violations.push(`job list printed ${listLines} jobs, expected ${fleetJobs}`);
    const statusTrace = medianBreakdown(statusTraces);
    const listTrace = medianBreakdown(listTraces);

    // ---------------------------------------------------------- the table
    const rawTotals = (l: RawSteps[]) => l.map((s) => s.total);
    const addDiff = median(bcAdd) - median(rawTotals(rawAdd));
    const msgDiff = median(bcMsg) - median(rawTotals(rawMsg));
    const rows: Row[] = [
      row('node -e 0 (bare node startup)', nodeBare),
      row('buildcoord --version (startup + imports, no I/O)', version),
      row('buildcoord job add --type make', bcAdd, { vs_raw_ms: addDiff }),
      row('raw git: fetch, reset, edit, commit, push (job)', rawTotals(rawAdd)),
      row('buildcoord msg send', bcMsg, { vs_raw_ms: msgDiff }),
      row('raw git: fetch, reset, edit, commit, push (msg)', rawTotals(rawMsg)),
      row(`buildcoord status (8 builders, ${fleetJobs} jobs)`, status),
      row(`buildcoord job list (${fleetJobs} jobs)`, list),
    ];
    const rawStep = (l: RawSteps[], k: keyof RawSteps) => Math.round(median(l.map((s) => s[k])));
    const targets: TargetCheck[] = [
      { target: 'job add: buildcoord median <= raw git median + 400 ms', met: addDiff <= 400, detail: `${median(bcAdd).toFixed(0)} vs ${median(rawTotals(rawAdd)).toFixed(0)} ms, +${addDiff.toFixed(0)} ms (p95 ${quantile(bcAdd, 0.95).toFixed(0)} vs ${quantile(rawTotals(rawAdd), 0.95).toFixed(0)})` },
      { target: 'msg send: buildcoord median <= raw git median + 400 ms', met: msgDiff <= 400, detail: `${median(bcMsg).toFixed(0)} vs ${median(rawTotals(rawMsg)).toFixed(0)} ms, +${msgDiff.toFixed(0)} ms (p95 ${quantile(bcMsg, 0.95).toFixed(0)} vs ${quantile(rawTotals(rawMsg), 0.95).toFixed(0)})` },
      { target: `status on 8 builders with ${fleetJobs} jobs under 1 s (median)`, met: median(status) < 1000, detail: `median ${median(status).toFixed(0)} ms, p95 ${quantile(status, 0.95).toFixed(0)} ms over ${status.length} runs` },
    ];
    const notes = [
      `buildcoord rows are whole child processes (node .../dist/agent/cli/main.js from a copy of dist/agent taken when the section started, warm private clone, file:// remote); raw rows are the git commands alone, run from this process (no node startup), so the difference includes node's own start (${median(nodeBare).toFixed(0)} ms here).`,
      `raw git steps, median ms: job ${['fetch', 'reset', 'edit', 'commit', 'push'].map((k) => `${k} ${rawStep(rawAdd, k as keyof RawSteps)}`).join(', ')}; msg ${['fetch', 'reset', 'edit', 'commit', 'push'].map((k) => `${k} ${rawStep(rawMsg, k as keyof RawSteps)}`).join(', ')}.`,
      describeBreakdown('job add', addTrace),
      describeBreakdown('msg send', msgTrace),
      describeBreakdown('status', statusTrace),
      describeBreakdown('job list', listTrace),
      `load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} when the section ended (${os.cpus().length} cores): every figure here is wall time on a shared machine.`,
      `fleet repository: coordination/jobs.json is ${jobsBytes} bytes; ${heads} heartbeat branches; the first status (which made the private clone) took ${first.ms.toFixed(0)} ms.`,
    ];
    return {
      title: `CLI wall time per call, ms (${runs} runs each; status/job list ${statusRuns} runs); child processes, warm private clone, file:// remote`,
      columns: [
        { key: 'operation', header: 'operation' },
        { key: 'n', header: 'n' },
        { key: 'median_ms', header: 'median', decimals: 0 },
        { key: 'p95_ms', header: 'p95', decimals: 0 },
        { key: 'min_ms', header: 'min', decimals: 0 },
        { key: 'max_ms', header: 'max', decimals: 0 },
        { key: 'vs_raw_ms', header: 'median - raw', decimals: 0 },
      ],
      rows,
      targets,
      notes,
      violations: violations.slice(0, 20),
      details: {
        runs,
        statusRuns,
        fleetJobs,
        samples: { nodeBare, version, bcAdd, bcMsg, rawAdd, rawMsg, status, list },
        traces: { addTrace, msgTrace, statusTrace, listTrace },
        jobsJsonBytes: Number(jobsBytes),
      },
    };
  },
};
