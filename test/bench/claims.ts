// Claim throughput: N processes drain one queue on a file:// remote, with
// buildcoord (test/fixtures/claimer.js: Store.transact on a bare private clone)
// and, in the same run on an identical copy of the same repository, with the
// plain-git compare-and-swap loop of test/bench/raw-claimer.js. Both sides
// claim and complete every job (2 commits per job) unless BENCH_CLAIM_ONLY=1,
// and both write the same bytes with the same pick rule.
//
// Settings (environment): BENCH_JOBS (default 200), BENCH_CLAIM_PROCS
// (default 1,2,4,8), BENCH_CLAIM_ONLY=1 (claim without completing).

import { spawn } from 'node:child_process';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { addJobs } from '../../agent/store/ops.js';
import { initLayout } from '../../agent/store/layout.js';
import { Store } from '../../agent/store/store.js';
import { PATHS, type JobsFile } from '../../agent/model/types.js';
import { git, makeBareRepo, onCleanup } from '../helpers/git.js';
import type { BenchContext, BenchSection, SectionResult, TargetCheck } from './main.js';

type Tool = 'buildcoord' | 'raw';

interface ChildRun {
  builder: string;
  code: number | null;
  signal: string | null;
  exitAt: number;
  stdout: string;
  stderr: string;
}

interface ToolRun {
  tool: Tool;
  procs: number;
  wallMs: number;
  claims: number;
  pushes: number;
  claimsPerSec: number;
  pushesPerClaim: number;
  /** The raw side's own count of every attempt (kept in the JSON; pushes already counts every attempt on both sides). */
  pushesAll: number | null;
  doubleClaims: number;
  perProcess: Array<{ builder: string; claims: number; pushes: number; ms: number; startLagMs: number }>;
  problems: string[];
}

const RUN_TIMEOUT_MS = 180_000;

function intList(text: string | undefined, fallback: number[]): number[] {
  if (!text) return fallback;
  const list = text.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`BENCH_CLAIM_PROCS must be a list of positive integers, not ${text}`);
  return list;
}

function draft(i: number) {
  return { type: 'make', priority: 1 + (i % 3), source: null, branch: 'main', commit: null, description: `bench job ${i}`, dependencies: [], timeout_seconds: null, retries: 0 };
}

const live = new Set<number>();
let killerRegistered = false;

/** Our own children only, by PID: a bench that errors or is interrupted leaves none running. */
function killLive(): void {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

function runChild(script: string, args: string[], builder: string, env: Record<string, string>): Promise<ChildRun> {
  if (!killerRegistered) {
    killerRegistered = true;
    onCleanup(() => {
      killerRegistered = false;
      killLive();
    });
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) live.add(pid);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let exitAt = 0;
    child.on('exit', () => (exitAt = Date.now()));
    child.on('close', (code, signal) => {
      if (pid !== undefined) live.delete(pid);
      resolve({ builder, code, signal, exitAt: exitAt || Date.now(), stdout, stderr });
    });
    child.on('error', (e) => {
      if (pid !== undefined) live.delete(pid);
      resolve({ builder, code: null, signal: null, exitAt: Date.now(), stdout, stderr: stderr + String(e) });
    });
  });
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not ours */
    }
  }
  return out;
}

async function copyRemote(ctx: BenchContext, template: string, label: string): Promise<{ dir: string; url: string }> {
  const dir = path.join(await ctx.tmpDir(`claims-${label}-`), 'coord.git');
  await cp(template, dir, { recursive: true });
  return { dir, url: `file://${dir}` };
}

/** One (tool, procs) run on its own copy of the seeded remote, then a check of what it left. */
async function runTool(ctx: BenchContext, tool: Tool, procs: number, template: string, jobIds: string[], claimOnly: boolean): Promise<ToolRun> {
  const remote = await copyRemote(ctx, template, `${tool}${procs}`);
  const builders = Array.from({ length: procs }, (_, i) => `b${i + 1}`);
  const distDir = path.join(ctx.root, 'dist', 'test');
  const extra = claimOnly ? ['--no-complete'] : [];

  // Clones are made before the clock starts on both sides: the raw side's
  // non-bare clones, buildcoord's bare private clones (via a read).
  const argvs: string[][] = [];
  for (const b of builders) {
    const dir = await ctx.tmpDir(`claims-${tool}-${b}-`);
    if (tool === 'raw') {
      const work = path.join(dir, 'work');
      await git(dir, 'clone', '--quiet', remote.url, work);
      argvs.push([path.join(distDir, 'bench', 'raw-claimer.js'), work, b]);
    } else {
      const store = new Store({ remote: remote.url, home: dir, actor: b });
      await store.read([PATHS.jobs]);
      store.close();
      argvs.push([path.join(distDir, 'fixtures', 'claimer.js'), remote.url, dir, b]);
    }
  }

  // Enough lead for every node process to load its modules and wait at the line.
  const startAt = Date.now() + 800 + 150 * procs;
  const runs = Promise.all(argvs.map(([script, ...args], i) => runChild(script!, [...args, ...extra, '--start-at', String(startAt)], builders[i]!, ctx.env)));
  const timer = setTimeout(() => {
    ctx.log(`claims: ${tool} x${procs} still running after ${RUN_TIMEOUT_MS / 1000} s: killing its processes`);
    killLive();
  }, RUN_TIMEOUT_MS);
  const children = await runs.finally(() => clearTimeout(timer));

  const problems: string[] = [];
  const claimsById = new Map<string, string[]>();
  const perProcess: ToolRun['perProcess'] = [];
  let pushes = 0;
  let pushesAll: number | null = tool === 'raw' ? 0 : null;
  let lastExit = startAt;
  for (const c of children) {
    lastExit = Math.max(lastExit, c.exitAt);
    if (c.code !== 0) problems.push(`${tool} x${procs}: ${c.builder} exited ${c.code ?? c.signal}: ${c.stderr.trim().split('\n').slice(-3).join(' / ') || '(no stderr)'}`);
    const events = jsonLines(c.stdout);
    for (const e of events.filter((e) => e.event === 'claim')) {
      const id = String(e.id);
      claimsById.set(id, [...(claimsById.get(id) ?? []), `${c.builder}#${String(e.attempt)}`]);
      if (e.attempt !== 1) problems.push(`${tool} x${procs}: ${c.builder} claimed ${id} as attempt ${String(e.attempt)}`);
    }
    const done = events.find((e) => e.event === 'done');
    if (!done) {
      problems.push(`${tool} x${procs}: ${c.builder} printed no done line`);
      continue;
    }
    // Every push attempt on both sides, lost transactions included: claimer.js prints its store's
    // own count (store.stats.pushes), raw-claimer.js counts every attempt as pushes_all.
    const attempts = Number(tool === 'raw' ? done.pushes_all : done.pushes);
    pushes += attempts;
    if (pushesAll !== null) pushesAll += Number(done.pushes_all);
    // The process measures from the common start; if its exit is much later than
    // its own figure, it came up late (lead too short) or exited slowly.
    perProcess.push({ builder: c.builder, claims: Number(done.claims), pushes: attempts, ms: Number(done.ms), startLagMs: c.exitAt - startAt - Number(done.ms) });
  }
  const claims = [...claimsById.values()].reduce((n, l) => n + l.length, 0);
  const doubleClaims = [...claimsById.values()].reduce((n, l) => n + (l.length - 1), 0);
  for (const [id, by] of claimsById) if (by.length > 1) problems.push(`${tool} x${procs}: job ${id} claimed ${by.length} times (${by.join(', ')})`);
  const unknown = [...claimsById.keys()].filter((id) => !jobIds.includes(id));
  if (unknown.length) problems.push(`${tool} x${procs}: claims of jobs that were never queued: ${unknown.slice(0, 3).join(', ')}`);
  const unclaimed = jobIds.filter((id) => !claimsById.has(id));
  if (unclaimed.length) problems.push(`${tool} x${procs}: ${unclaimed.length} jobs never claimed (first ${unclaimed[0]})`);

  // What the remote holds must agree with what the processes said.
  const final = JSON.parse(await git(remote.dir, 'show', `refs/heads/main:${PATHS.jobs}`)) as JobsFile;
  const want = claimOnly ? 'running' : 'completed';
  if (final.jobs.length !== jobIds.length) problems.push(`${tool} x${procs}: final jobs.json has ${final.jobs.length} jobs, ${jobIds.length} were queued`);
  for (const j of final.jobs) {
    const holder = claimsById.get(j.id)?.[0]?.split('#')[0];
    if (j.status !== want || j.attempt !== 1 || j.assigned_to !== holder) {
      problems.push(`${tool} x${procs}: final ${j.id} is ${j.status} attempt ${j.attempt} on ${j.assigned_to}; expected ${want} attempt 1 on ${holder}`);
    }
  }
  const commits = Number(await git(remote.dir, 'rev-list', '--count', 'refs/heads/main'));
  const expectedCommits = 2 + jobIds.length * (claimOnly ? 1 : 2);
  if (commits !== expectedCommits) problems.push(`${tool} x${procs}: main has ${commits} commits, expected ${expectedCommits} (init, enqueue, ${claimOnly ? 'a claim' : 'a claim and a completion'} per job)`);

  const wallMs = lastExit - startAt;
  return {
    tool,
    procs,
    wallMs,
    claims,
    pushes,
    claimsPerSec: claims / (wallMs / 1000),
    pushesPerClaim: claims ? pushes / claims : Number.NaN,
    pushesAll,
    doubleClaims,
    perProcess,
    problems: problems.slice(0, 20).concat(problems.length > 20 ? [`... and ${problems.length - 20} more`] : []),
  };
}

export const claimsSection: BenchSection = {
  name: 'claims',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const jobCount = Number(process.env.BENCH_JOBS ?? 200);
    if (!Number.isInteger(jobCount) || jobCount < 1) throw new Error(`BENCH_JOBS must be a positive integer, not ${process.env.BENCH_JOBS}`);
    const procList = intList(process.env.BENCH_CLAIM_PROCS, [1, 2, 4, 8]);
    const claimOnly = process.env.BENCH_CLAIM_ONLY === '1';

    // One seeded repository, copied byte for byte for every run of either tool.
    const seed = await makeBareRepo({ parent: await ctx.tmpDir('claims-seed-') });
    const seeder = new Store({ remote: seed.url, home: await ctx.tmpDir('claims-seed-home-'), actor: 'bench' });
    await initLayout(seeder, ['build1', 'build2']);
    const added = await addJobs(seeder, Array.from({ length: jobCount }, (_, i) => draft(i)));
    seeder.close();
    const jobIds = added.result.map((j) => j.id);

    const runs: ToolRun[] = [];
    for (const [i, procs] of procList.entries()) {
      // Alternate which tool goes first so drift in machine load favours neither.
      const order: Tool[] = i % 2 === 0 ? ['buildcoord', 'raw'] : ['raw', 'buildcoord'];
      for (const tool of order) {
        const r = await runTool(ctx, tool, procs, seed.dir, jobIds, claimOnly);
        ctx.log(`claims: ${tool} x${procs}: ${r.claims} claims in ${(r.wallMs / 1000).toFixed(2)} s = ${r.claimsPerSec.toFixed(1)}/s, ${r.pushesPerClaim.toFixed(2)} pushes/claim, ${r.doubleClaims} double`);
        runs.push(r);
      }
    }

    const find = (tool: Tool, procs: number) => runs.find((r) => r.tool === tool && r.procs === procs)!;
    const rows = procList.map((procs) => {
      const bc = find('buildcoord', procs);
      const raw = find('raw', procs);
      return {
        processes: procs,
        bc_claims_per_s: bc.claimsPerSec,
        raw_claims_per_s: raw.claimsPerSec,
        ratio: bc.claimsPerSec / raw.claimsPerSec,
        bc_pushes_per_claim: bc.pushesPerClaim,
        raw_pushes_per_claim: raw.pushesPerClaim,
        double_claims: `${bc.doubleClaims}/${raw.doubleClaims}`,
        bc_double_claims: bc.doubleClaims,
        raw_double_claims: raw.doubleClaims,
        bc_wall_s: bc.wallMs / 1000,
        raw_wall_s: raw.wallMs / 1000,
        bc_claims: bc.claims,
        raw_claims: raw.claims,
        bc_pushes: bc.pushes,
        raw_pushes: raw.pushes,
        raw_pushes_all: raw.pushesAll,
        raw_pushes_all_per_claim: raw.pushesAll !== null && raw.claims ? raw.pushesAll / raw.claims : null,
      };
    });

    const targets: TargetCheck[] = [];
    const at4 = procList.includes(4) ? { bc: find('buildcoord', 4), raw: find('raw', 4) } : null;
    if (at4) {
      targets.push({
        target: 'at 4 processes buildcoord claims/s >= raw git claims/s',
        met: at4.bc.claimsPerSec >= at4.raw.claimsPerSec,
        detail: `${at4.bc.claimsPerSec.toFixed(1)} vs ${at4.raw.claimsPerSec.toFixed(1)} claims/s, ratio ${(at4.bc.claimsPerSec / at4.raw.claimsPerSec).toFixed(2)}`,
      });
    }
    const slowStarts = runs.flatMap((r) => r.perProcess.filter((p) => p.startLagMs > 500).map((p) => `${r.tool} x${r.procs} ${p.builder} +${p.startLagMs} ms`));
    const share = (r: ToolRun) => (r.claims ? Math.max(...r.perProcess.map((p) => p.claims)) / r.claims : 0);
    const multi = procList.filter((p) => p > 1);
    const notes = [
      'pushes/claim counts every push attempt on both sides, the lost ones included (a loser that then finds the queue empty still pushed).',
      ...(multi.length
        ? [`largest share of the claims taken by one process: buildcoord ${multi.map((p) => `x${p} ${Math.round(100 * share(find('buildcoord', p)))}%`).join(', ')}; raw ${multi.map((p) => `x${p} ${Math.round(100 * share(find('raw', p)))}%`).join(', ')} (a buildcoord store that just pushed knows main and skips its fetch, so it tends to keep winning).`]
        : []),
      ...(slowStarts.length ? [`processes that exited well after their own measured end (late start or slow exit; wall time is still from the common start): ${slowStarts.join(', ')}`] : []),
    ];

    return {
      title: `Claim throughput, ${jobCount} jobs on one file:// remote, ${claimOnly ? 'claim only (1 commit per job)' : 'claim + complete per job (2 commits per job)'}; wall time from the common start to the last exit; pushes: every attempt`,
      columns: [
        { key: 'processes', header: 'processes' },
        { key: 'bc_claims_per_s', header: 'buildcoord claims/s', decimals: 1 },
        { key: 'raw_claims_per_s', header: 'raw claims/s', decimals: 1 },
        { key: 'ratio', header: 'ratio (buildcoord/raw)', decimals: 2 },
        { key: 'bc_pushes_per_claim', header: 'buildcoord pushes/claim', decimals: 2 },
        { key: 'raw_pushes_per_claim', header: 'raw pushes/claim', decimals: 2 },
        { key: 'double_claims', header: 'double claims (bc/raw)' },
      ],
      rows,
      notes,
      targets,
      violations: runs.flatMap((r) => r.problems),
      details: {
        jobs: jobCount,
        mode: claimOnly ? 'claim-only' : 'claim+complete',
        runs: runs.map(({ problems, ...r }) => ({ ...r, problems: problems.length })),
      },
    };
  },
};
