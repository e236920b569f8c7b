// The agent (issue 4): real `buildcoord agent` processes on file:// remotes.
//
// (a) enqueue-to-claim latency: two agents (--poll 1s --heartbeat 2s --lease 10s)
//     with a fast job type from their own config file ("noop": /bin/true); jobs
//     are enqueued one at a time with pauses, from the moment addJobs returned
//     (the enqueue commit is on the remote) to the time of the agent's 'claimed'
//     log line.
// (b) an idle agent (--poll 10s --heartbeat 30s --lease 5m) on its own remote:
//     resident memory (VmRSS) and CPU (utime+stime from /proc, with its git
//     children), sampled every 5 s. It runs while (a) and (d) run on other
//     remotes, so the section stays short; CPU time is per process, so the load
//     of the others barely shows in it.
// (c) main commits per job of the jobs of (a) (Coord-Job trailers).
// (d) main commits per builder-day of heartbeats: an agent with --heartbeat 100ms
//     for 10 s, main counted between a point after its start and one before its
//     stop; the heartbeat branch's updates counted from the remote's reflog.
//
// Settings (environment): BENCH_AGENT_JOBS (default 20), BENCH_AGENT_IDLE_S
// (default 120), BENCH_AGENT_HB_S (default 10).

import { execFileSync, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PATHS, type JobsFile } from '../../agent/model/types.js';
import { initLayout } from '../../agent/store/layout.js';
import { addJobs, type JobDraft } from '../../agent/store/ops.js';
import { Store } from '../../agent/store/store.js';
import { git, makeBareRepo } from '../helpers/git.js';
import { cliSnapshot, errorLines, gitVerb, intEnv, median, quantile, readTrace, sleep, track, untrack, type TraceProc } from './cli.js';
import type { BenchContext, BenchSection, Cell, SectionResult, TargetCheck } from './main.js';

export type Event = Record<string, unknown> & { msg?: string; time?: number };

export interface AgentProc {
  builder: string;
  pid: number;
  events: Event[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** The first event (seen or to come) matching pred; null on timeout or abort. */
  waitFor(pred: (e: Event) => boolean, timeoutMs: number, signal?: AbortSignal): Promise<Event | null>;
  /** SIGTERM (drain), SIGKILL if it has not exited within timeoutMs; ms it took. */
  stop(timeoutMs?: number): Promise<number>;
}

export function startAgent(ctx: BenchContext, opts: { cli: string; builder: string; repo: string; home: string; config: string; flags: string[]; env?: Record<string, string> }): AgentProc {
  const args = [opts.cli, 'agent', '--builder', opts.builder, '--repo', opts.repo, '--config', opts.config, ...opts.flags];
  const child = spawn(process.execPath, args, { env: { ...ctx.env, BUILDCOORD_HOME: opts.home, NO_COLOR: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start agent ${opts.builder}`);
  track(child.pid);
  const events: Event[] = [];
  const waiters: Array<{ pred: (e: Event) => boolean; resolve: (e: Event | null) => void }> = [];
  const drop = (w: (typeof waiters)[number]): boolean => {
    const i = waiters.indexOf(w);
    if (i < 0) return false;
    waiters.splice(i, 1);
    return true;
  };
  let buf = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let e: Event;
      try {
        e = JSON.parse(line) as Event;
      } catch {
        continue;
      }
      events.push(e);
      for (const w of [...waiters]) if (w.pred(e) && drop(w)) w.resolve(e);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (err.length < 64 * 1024) err += d;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      untrack(child.pid);
      resolve({ code, signal });
    });
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const pid = child.pid;
  return {
    builder: opts.builder,
    pid,
    events,
    stderr: () => err,
    exited,
    waitFor(pred, timeoutMs, signal) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      if (signal?.aborted) return Promise.resolve(null);
      return new Promise((resolve) => {
        const w = {
          pred,
          resolve: (e: Event | null) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            resolve(e);
          },
        };
        const onAbort = () => drop(w) && w.resolve(null);
        const timer = setTimeout(onAbort, timeoutMs);
        signal?.addEventListener('abort', onAbort);
        waiters.push(w);
      });
    },
    async stop(timeoutMs = 20_000) {
      const t0 = Date.now();
      if (gone) return 0;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return 0; // exited a moment ago
      }
      const timer = setTimeout(() => {
        if (!gone) {
          ctx.log(`agent ${opts.builder} (pid ${pid}) did not exit ${timeoutMs} ms after SIGTERM: SIGKILL`);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }, timeoutMs);
      await exited;
      clearTimeout(timer);
      return Date.now() - t0;
    },
  };
}

/** A coordination remote with the layout for these builders. */
export async function seededRemote(ctx: BenchContext, label: string, builders: string[]): Promise<{ dir: string; url: string }> {
  const remote = await makeBareRepo({ parent: await ctx.tmpDir(`agent-${label}-`) });
  const store = new Store({ remote: remote.url, home: await ctx.tmpDir(`agent-${label}-seed-`), actor: 'bench' });
  await initLayout(store, builders);
  store.close();
  return remote;
}

async function agentConfig(ctx: BenchContext, builder: string): Promise<string> {
  const file = path.join(await ctx.tmpDir(`agent-cfg-${builder}-`), 'agent.json');
  await writeFile(file, JSON.stringify({ builder, types: { noop: { command: '/bin/true', args: [] } } }, null, 2) + '\n');
  return file;
}

async function refExists(remoteDir: string, ref: string): Promise<boolean> {
  try {
    await git(remoteDir, 'rev-parse', '--verify', '--quiet', ref);
    return true;
  } catch {
    return false;
  }
}

export async function waitReady(a: AgentProc, remoteDir: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  if (!(await a.waitFor((e) => e.msg === 'agent starting', timeoutMs))) return false;
  while (Date.now() < deadline) {
    if (await refExists(remoteDir, `refs/heads/heartbeat/${a.builder}`)) return true;
    await sleep(100);
  }
  return false;
}

interface MainCommit {
  sha: string;
  op: string | null;
  jobs: string[];
  subject: string;
}

async function mainCommits(remoteDir: string): Promise<MainCommit[]> {
  const out = await git(remoteDir, 'log', '--format=%H%x1f%B%x1e', 'refs/heads/main');
  return out
    .split('\x1e')
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => {
      const [sha, body = ''] = r.split('\x1f');
      const trailer = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(body)?.[1]?.trim() ?? null;
      return { sha: sha!, op: trailer('Coord-Op'), jobs: (trailer('Coord-Job') ?? '').split(/\s+/).filter(Boolean), subject: body.split('\n')[0] ?? '' };
    });
}

/** The first of several agents to log an event matching pred; the other waits are dropped. */
async function waitAny(list: AgentProc[], pred: (e: Event) => boolean, timeoutMs: number): Promise<{ e: Event; a: AgentProc } | null> {
  const ac = new AbortController();
  const found = await new Promise<{ e: Event; a: AgentProc } | null>((resolve) => {
    let left = list.length;
    for (const a of list) {
      void a.waitFor(pred, timeoutMs, ac.signal).then((e) => {
        if (e) resolve({ e, a });
        else if (--left === 0) resolve(null);
      });
    }
  });
  ac.abort();
  return found;
}

const fmtMs = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

const countMain = async (remoteDir: string) => Number(await git(remoteDir, 'rev-list', '--count', 'refs/heads/main'));

// ---------------------------------------------------------------- /proc sampling

interface ProcStat {
  pid: number;
  ppid: number;
  ticks: number; // utime + stime
  childTicks: number; // cutime + cstime (reaped children)
  comm: string;
}

async function readStat(pid: number): Promise<ProcStat | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' '); // f[0] is field 3 (state)
    return { pid, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]), comm };
  } catch {
    return null;
  }
}

async function rssKb(pid: number): Promise<{ rss: number; hwm: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** Live descendants of pid (children, grandchildren...). */
async function descendants(pid: number): Promise<ProcStat[]> {
  const all: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = await readStat(Number(name));
    if (s) all.push(s);
  }
  const out: ProcStat[] = [];
  const frontier = [pid];
  while (frontier.length) {
    const p = frontier.pop()!;
    for (const s of all) {
      if (s.ppid === p) {
        out.push(s);
        frontier.push(s.pid);
      }
    }
  }
  return out;
}

interface Sample {
  at: number;
  rssKb: number;
  hwmKb: number;
  /** The agent's own CPU. */
  selfTicks: number;
  /** Own + reaped children + live descendants (their own and their reaped children). */
  treeTicks: number;
  childRssKb: number;
  liveChildren: string[];
}

async function sample(pid: number): Promise<Sample | null> {
  const s = await readStat(pid);
  const m = await rssKb(pid);
  if (!s || !m) return null;
  const kids = await descendants(pid);
  let childRss = 0;
  for (const k of kids) childRss += (await rssKb(k.pid))?.rss ?? 0;
  return {
    at: Date.now(),
    rssKb: m.rss,
    hwmKb: m.hwm,
    selfTicks: s.ticks,
    treeTicks: s.ticks + s.childTicks + kids.reduce((n, k) => n + k.ticks + k.childTicks, 0),
    childRssKb: childRss,
    liveChildren: kids.map((k) => k.comm),
  };
}

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

// ---------------------------------------------------------------- the section

type Row = Record<string, Cell>;

export const agentSection: BenchSection = {
  name: 'agent',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const jobCount = intEnv('BENCH_AGENT_JOBS', 20);
    const idleS = intEnv('BENCH_AGENT_IDLE_S', 120);
    const hbS = intEnv('BENCH_AGENT_HB_S', 10);
    const violations: string[] = [];
    const notes: string[] = [];
    const agents: AgentProc[] = [];
    const stopAll = async () => {
      await Promise.all(agents.map((a) => a.stop(15_000).catch(() => 0)));
    };

    try {
      const cli = await cliSnapshot(ctx);
      // ---------------------------------------------------------- (b) starts first: the idle agent
      const idleRemote = await seededRemote(ctx, 'idle', ['build1']);
      const idle = startAgent(ctx, {
        cli,
        builder: 'build1',
        repo: idleRemote.url,
        home: await ctx.tmpDir('agent-idle-home-'),
        config: await agentConfig(ctx, 'build1'),
        flags: ['--poll', '10s', '--heartbeat', '30s', '--lease', '5m'],
      });
      agents.push(idle);
      if (!(await waitReady(idle, idleRemote.dir, 30_000))) throw new Error(`idle agent did not come up: ${idle.stderr().slice(-500)}`);
      await sleep(3000); // its first poll and claim attempt are over
      const idleMainBefore = await countMain(idleRemote.dir);
      const samples: Sample[] = [];
      const first = await sample(idle.pid);
      if (!first) throw new Error('cannot read /proc for the idle agent');
      samples.push(first);
      const idleEnd = first.at + idleS * 1000;
      const sampler = (async () => {
        while (Date.now() < idleEnd) {
          await sleep(Math.min(5000, Math.max(0, idleEnd - Date.now())));
          const s = await sample(idle.pid);
          if (s) samples.push(s);
        }
      })();
      ctx.log(`agent: idle agent pid ${idle.pid} sampled every 5 s for ${idleS} s (in the background)`);

      // ---------------------------------------------------------- (a) enqueue-to-claim, two agents
      const srcRepo = path.join(await ctx.tmpDir('agent-src-'), 'app');
      await git(path.dirname(srcRepo), 'init', '--quiet', '-b', 'main', srcRepo);
      await writeFile(path.join(srcRepo, 'README'), 'bench source\n');
      await git(srcRepo, 'add', 'README');
      await git(srcRepo, 'commit', '--quiet', '-m', 'bench source');

      const remote = await seededRemote(ctx, 'latency', ['build1', 'build2']);
      const pair: AgentProc[] = [];
      // git's trace2 events say how many git processes the pair spends per job, and when their polls fire.
      const traceDir = await ctx.tmpDir('agent-trace-');
      const traceFile = (b: string) => path.join(traceDir, `${b}.json`);
      for (const b of ['build1', 'build2']) {
        const a = startAgent(ctx, {
          cli,
          builder: b,
          repo: remote.url,
          home: await ctx.tmpDir(`agent-${b}-home-`),
          config: await agentConfig(ctx, b),
          flags: ['--poll', '1s', '--heartbeat', '2s', '--lease', '10s'],
          env: { GIT_TRACE2_EVENT: traceFile(b) },
        });
        agents.push(a);
        pair.push(a);
      }
      for (const a of pair) if (!(await waitReady(a, remote.dir, 30_000))) throw new Error(`agent ${a.builder} did not come up: ${a.stderr().slice(-500)}`);
      await sleep(1500);
      const mainAtStart = await countMain(remote.dir);

      const enqueuer = new Store({ remote: remote.url, home: await ctx.tmpDir('agent-enq-home-'), actor: 'bench' });
      const draft: JobDraft = { type: 'noop', priority: 5, source: srcRepo, branch: 'main', commit: null, description: 'bench noop', dependencies: [], timeout_seconds: null, retries: 0 };
      interface Lat {
        id: string;
        landedAt: number;
        enqueueMs: number;
        enqueuePushes: number;
        claimAt: number | null;
        by: string | null;
        claimPushes: number | null;
        doneAt: number | null;
      }
      const lats: Lat[] = [];
      ctx.log(`agent: ${jobCount} jobs, one at a time, to two agents polling every 1 s`);
      const runStart = Date.now();
      for (let i = 0; i < jobCount; i++) {
        // 1.0-2.4 s, in steps that do not line up with the 1 s poll.
        await sleep(1000 + ((i * 370) % 1400));
        const t0 = Date.now();
        const out = await addJobs(enqueuer, [draft]);
        const landedAt = Date.now();
        const id = out.result[0]!.id;
        const claimedBy = (e: Event) => e.msg === 'claimed' && e.job === id;
        const claim = await waitAny(pair, claimedBy, 30_000);
        const lat: Lat = { id, landedAt, enqueueMs: landedAt - t0, enqueuePushes: out.pushAttempts, claimAt: claim ? Number(claim.e.time) : null, by: claim?.a.builder ?? null, claimPushes: claim ? Number(claim.e.pushAttempts) : null, doneAt: null };
        lats.push(lat);
        if (!claim) {
          violations.push(`job ${id} was not claimed within 30 s`);
          continue;
        }
        const done = await claim.a.waitFor((e) => e.msg === 'result pushed' && e.job === id, 30_000);
        if (!done) violations.push(`job ${id}: no 'result pushed' from ${claim.a.builder} within 30 s`);
        else lat.doneAt = Number(done.time);
      }
      enqueuer.close();
      const runEnd = Date.now();
      await sleep(500);
      const mainAfterJobs = await countMain(remote.dir);

      // Each job claimed exactly once, and completed.
      for (const l of lats) {
        const claims = pair.flatMap((a) => a.events.filter((e) => e.msg === 'claimed' && e.job === l.id).map(() => a.builder));
        if (claims.length > 1) violations.push(`job ${l.id} claimed ${claims.length} times (${claims.join(', ')})`);
      }
      const finalJobs = JSON.parse(await git(remote.dir, 'show', `refs/heads/main:${PATHS.jobs}`)) as JobsFile;
      for (const l of lats) {
        const j = finalJobs.jobs.find((x) => x.id === l.id);
        if (!j || j.status !== 'completed' || j.attempt !== 1) violations.push(`job ${l.id} ended ${j ? `${j.status} attempt ${j.attempt}` : 'missing'}; expected completed attempt 1`);
      }

      // (c) commits per job
      const commits = await mainCommits(remote.dir);
      const ids = new Set(lats.map((l) => l.id));
      const perJob = lats.map((l) => commits.filter((c) => c.jobs.includes(l.id)));
      const perJobCount = perJob.map((c) => c.length);
      const opsOf = (cs: MainCommit[]) => cs.map((c) => c.op ?? '?').reverse().join('+');
      const opShapes = new Map<string, number>();
      for (const cs of perJob) opShapes.set(opsOf(cs), (opShapes.get(opsOf(cs)) ?? 0) + 1);
      const window = commits.slice(0, mainAfterJobs - mainAtStart);
      const other = window.filter((c) => !c.jobs.some((j) => ids.has(j)));

      // ---------------------------------------------------------- (d) heartbeats vs main
      const hbRemote = await seededRemote(ctx, 'hb', ['build1']);
      // The remote keeps a reflog of every ref update: one line per heartbeat push.
      await git(hbRemote.dir, 'config', 'core.logAllRefUpdates', 'always');
      const hb = startAgent(ctx, { cli, builder: 'build1', repo: hbRemote.url, home: await ctx.tmpDir('agent-hb-home-'), config: await agentConfig(ctx, 'build1'), flags: ['--poll', '1s', '--heartbeat', '100ms', '--lease', '1s'] });
      agents.push(hb);
      if (!(await waitReady(hb, hbRemote.dir, 30_000))) throw new Error(`heartbeat agent did not come up: ${hb.stderr().slice(-500)}`);
      await sleep(1500);
      const reflog = path.join(hbRemote.dir, 'logs', 'refs', 'heads', 'heartbeat', 'build1');
      const hbUpdates = async () => (await readFile(reflog, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
      const hbMainA = await countMain(hbRemote.dir);
      const hbA = await hbUpdates();
      const hbT0 = Date.now();
      await sleep(hbS * 1000);
      const hbMainB = await countMain(hbRemote.dir);
      const hbB = await hbUpdates();
      const hbSecs = (Date.now() - hbT0) / 1000;
      const hbStopMs = await hb.stop(15_000);
      const hbMainC = await countMain(hbRemote.dir);
      const hbBranchCommits = Number(await git(hbRemote.dir, 'rev-list', '--count', 'refs/heads/heartbeat/build1'));
      const hbParents = (await git(hbRemote.dir, 'rev-list', '--parents', '-n', '1', 'refs/heads/heartbeat/build1')).split(' ').length - 1;
      const beats = hbB - hbA;
      const mainDuring = hbMainB - hbMainA;
      const perDay = beats > 0 ? (mainDuring / beats) * 1440 : Number.NaN;
      if (hbBranchCommits !== 1 || hbParents !== 0) violations.push(`heartbeat/build1 has ${hbBranchCommits} commits (tip has ${hbParents} parents); expected one parentless commit`);
      if (beats < 1) violations.push(`no heartbeat pushes seen in ${hbSecs.toFixed(1)} s (reflog ${reflog})`);
      const hbErrors = hb.events.filter((e) => e.level !== undefined && Number(e.level) >= 40).map((e) => String(e.msg));

      // ---------------------------------------------------------- (a) agents stop; (b) finishes
      const stopMs = await Promise.all(pair.map((a) => a.stop(20_000)));
      const mainAfterStop = await countMain(remote.dir);
      await sampler;
      const idleMainAfter = await countMain(idleRemote.dir);
      const last = samples[samples.length - 1]!;
      const idleStopMs = await idle.stop(15_000);
      const tck = clockTicks();
      const wallS = (last.at - first.at) / 1000;
      const cpuSelf = ((last.selfTicks - first.selfTicks) / tck / wallS) * 100;
      const cpuTree = ((last.treeTicks - first.treeTicks) / tck / wallS) * 100;
      const rssMb = samples.map((s) => s.rssKb / 1024);
      const childRssMb = samples.map((s) => s.childRssKb / 1024);
      const idleWarn = idle.events.filter((e) => Number(e.level) >= 40).map((e) => String(e.msg));

      for (const a of agents) {
        const r = await Promise.race([a.exited, sleep(0).then(() => null)]);
        if (r && r.code !== 0) violations.push(`agent ${a.builder} (pid ${a.pid}) exited ${r.code ?? r.signal}: ${errorLines(a.stderr())}`);
      }

      // git processes of the pair during the run, from their traces
      const traced = new Map<string, TraceProc[]>();
      for (const a of pair) traced.set(a.builder, (await readTrace(traceFile(a.builder))).filter((p) => p.start >= runStart && p.start <= runEnd));
      const gitCount: Record<string, number> = {};
      for (const procs of traced.values()) {
        for (const p of procs) {
          let verb = gitVerb(p.argv);
          if (verb === 'push') verb = p.argv.some((x) => x.includes('refs/heads/heartbeat/')) ? 'push (heartbeat)' : 'push (main)';
          // The private clone of the coordination repository lives under <home>/clones/; anything else is the job's source checkout.
          if (!p.argv.some((x) => x.includes('/clones/'))) verb = `source ${verb}`;
          gitCount[verb] = (gitCount[verb] ?? 0) + 1;
        }
      }
      // Where in the wall-clock second each agent's polls (ls-remote of main) start.
      const pollPhase = [...traced.entries()].map(([b, procs]) => {
        const phases = procs.filter((p) => gitVerb(p.argv) === 'ls-remote' && p.argv.includes('--heads')).map((p) => p.start % 1000);
        return `${b} ${phases.length} polls at ${fmtMs(median(phases))} ms past the second (p5 ${fmtMs(quantile(phases, 0.05))}, p95 ${fmtMs(quantile(phases, 0.95))})`;
      });
      const mainPushes = gitCount['push (main)'] ?? 0;
      const landedByAgents = 2 * lats.filter((l) => l.doneAt !== null).length;

      // ---------------------------------------------------------- table
      const claimed = lats.filter((l) => l.claimAt !== null);
      const latency = claimed.map((l) => l.claimAt! - l.landedAt);
      const claimToDone = claimed.filter((l) => l.doneAt !== null).map((l) => l.doneAt! - l.claimAt!);
      const byAgent = pair.map((a) => `${a.builder} ${claimed.filter((l) => l.by === a.builder).length}`).join(', ');
      const extraClaimPushes = claimed.filter((l) => (l.claimPushes ?? 1) > 1).length;
      const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
      const rows: Row[] = [
        { measure: 'enqueue-to-claim latency p50 (2 agents, --poll 1s)', value: median(latency), unit: 'ms', target: '-', detail: `${claimed.length}/${lats.length} claimed; by ${byAgent}` },
        { measure: 'enqueue-to-claim latency p95', value: quantile(latency, 0.95), unit: 'ms', target: '-', detail: `min ${fmt(Math.min(...latency))}, max ${fmt(Math.max(...latency))}` },
        { measure: 'claim-to-result-pushed p50 (/bin/true)', value: median(claimToDone), unit: 'ms', target: '-', detail: `p95 ${fmt(quantile(claimToDone, 0.95))}` },
        { measure: 'enqueue transaction (addJobs, in-process) p50', value: median(lats.map((l) => l.enqueueMs)), unit: 'ms', target: '-', detail: `${lats.filter((l) => l.enqueuePushes > 1).length} needed more than one push` },
        { measure: 'idle agent RSS, median of samples', value: median(rssMb), unit: 'MB', target: '< 80', detail: `max ${fmt(Math.max(...rssMb), 1)}, last half ${fmt(median(rssMb.slice(Math.floor(rssMb.length / 2))), 1)}, peak VmHWM ${fmt(last.hwmKb / 1024, 1)}; git children ${fmt(median(childRssMb), 1)} MB (${[...new Set(samples.flatMap((s) => s.liveChildren))].join(', ') || 'none'})` },
        { measure: 'idle agent CPU, own', value: cpuSelf, unit: '% of a core', target: '-', detail: `${samples.length} samples over ${fmt(wallS)} s, --poll 10s --heartbeat 30s` },
        { measure: 'idle agent CPU, with git children', value: cpuTree, unit: '% of a core', target: '< 1', detail: `${last.treeTicks - first.treeTicks} ticks of 1/${tck} s` },
        { measure: 'main commits per job (max)', value: Math.max(...perJobCount), unit: 'commits', target: '<= 3', detail: `${[...opShapes.entries()].map(([k, n]) => `${n}x ${k}`).join('; ')}` },
        { measure: 'other main commits during the latency run', value: other.length, unit: 'commits', target: '-', detail: other.length ? other.slice(0, 4).map((c) => c.subject).join('; ') : 'none' },
        { measure: 'heartbeats pushed (--heartbeat 100ms)', value: beats, unit: 'pushes', target: '-', detail: `${fmt(beats / hbSecs, 1)}/s over ${fmt(hbSecs, 1)} s` },
        { measure: 'main commits during those heartbeats', value: mainDuring, unit: 'commits', target: '0', detail: `after stop: +${hbMainC - hbMainB} (the offline status)` },
        { measure: 'main commits per builder-day of 60 s heartbeats', value: perDay, unit: 'commits', target: '0', detail: `(${mainDuring} / ${beats}) x 1440` },
        { measure: 'heartbeat branch commits', value: hbBranchCommits, unit: 'commits', target: '1', detail: `tip has ${hbParents} parents` },
      ];
      const targets: TargetCheck[] = [
        { target: 'idle agent RSS under 80 MB (every sample)', met: Math.max(...rssMb) < 80, detail: `max ${fmt(Math.max(...rssMb), 1)} MB, median ${fmt(median(rssMb), 1)} MB, median of the last half ${fmt(median(rssMb.slice(Math.floor(rssMb.length / 2))), 1)} MB` },
        { target: 'idle agent CPU under 1% of one core (git children included)', met: cpuTree < 1, detail: `${fmt(cpuTree, 2)}% (own ${fmt(cpuSelf, 2)}%)` },
        { target: 'at most 3 main commits per job', met: Math.max(...perJobCount) <= 3, detail: `per job: ${[...new Set(perJobCount)].sort().join(', ')}` },
        { target: '0 main commits per builder-day of heartbeats', met: mainDuring === 0, detail: `${mainDuring} commits over ${beats} heartbeats` },
        { target: 'heartbeat branch is one commit', met: hbBranchCommits === 1 && hbParents === 0, detail: `${hbBranchCommits} commit(s)` },
      ];
      notes.push(
        `latency is from the moment addJobs returned (the enqueue is on the remote) to the 'time' of the agent's 'claimed' log line, same host clock; pauses between jobs 1.0-2.4 s.`,
        `claims that needed more than one push: ${extraClaimPushes} of ${claimed.length} (a loser's claim transaction ends with "no eligible job" and logs nothing, so it shows only in the git counts below).`,
        `git processes of the two agents during the ${fmtMs((runEnd - runStart) / 1000)} s latency run: ${Object.entries(gitCount).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}; main pushes ${mainPushes} for ${landedByAgents} commits landed by the agents (claim + completion per job), so ${mainPushes - landedByAgents} lost a race or were rejected; per job: ${fmtMs((Object.values(gitCount).reduce((a, b) => a + b, 0)) / Math.max(1, lats.length), 1)} git processes.`,
        `poll timing: ${pollPhase.join('; ')}.`,
        `main: ${mainAtStart} commits when the latency run started, ${mainAfterJobs} after ${lats.length} jobs, ${mainAfterStop} after both agents stopped (their offline status).`,
        `stop (SIGTERM to exit): agents ${stopMs.join(', ')} ms, heartbeat agent ${hbStopMs} ms, idle agent ${idleStopMs} ms; idle agent main commits during sampling: ${idleMainAfter - idleMainBefore}.`,
        `the idle agent ran while the latency and heartbeat runs used the other remotes; CPU time is counted per process, so their load adds little to it. Load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end (${os.cpus().length} cores).`,
        ...(idleWarn.length ? [`idle agent warnings: ${[...new Set(idleWarn)].slice(0, 5).join('; ')}`] : []),
        ...(hbErrors.length ? [`heartbeat agent warnings: ${[...new Set(hbErrors)].slice(0, 5).join('; ')}`] : []),
      );
      return {
        title: `Agent: claim latency (2 agents, ${lats.length} jobs), idle cost (${idleS} s), main commits per job and per heartbeat-day; file:// remotes`,
        columns: [
          { key: 'measure', header: 'measure' },
          { key: 'value', header: 'value', decimals: 1 },
          { key: 'unit', header: 'unit' },
          { key: 'target', header: 'target' },
          { key: 'detail', header: 'detail' },
        ],
        rows,
        targets,
        notes,
        violations: violations.slice(0, 20),
        details: {
          jobs: lats,
          latency_ms: latency,
          commits_per_job: perJobCount,
          idle: { clk_tck: tck, samples },
          heartbeat: { beats, seconds: hbSecs, mainDuring, mainAfterStop: hbMainC - hbMainB },
        },
      };
    } finally {
      await stopAll();
    }
  },
};
