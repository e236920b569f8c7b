// The builder daemon as people run it: `node dist/agent/cli/main.js agent`
// as a real child process against a real bare repository over file://, real
// builds (make, and fixture shell scripts added as job types through the
// agent's config file), real signals. What is checked is what a person would
// see afterwards: main's history and files, the heartbeat branches, the
// agent's log lines and exit code, and whether build processes are gone.
//
// Intervals are short (poll 200 ms, heartbeat 300 ms, lease 1.5 s) so a test
// that waits for a lease to run out waits seconds, not minutes.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cancel } from '../../agent/model/jobs.js';
import { PATHS, type HeartbeatFile, type Job, type JobsFile, type MessagesFile, type StatusFile } from '../../agent/model/types.js';
import { initLayout } from '../../agent/store/layout.js';
import { addJobs, type JobDraft } from '../../agent/store/ops.js';
import { Store } from '../../agent/store/store.js';
import { cleanupAll, cliPath, cloneWork, collectJsonLines, git, gitEnv, makeBareRepo, onCleanup, pushFiles, repoRoot, runCli, seedRepo, tmpDir, isGone, sleep, waitGone, type LogLine } from '../helpers/git.js';

after(cleanupAll);

const FIXTURES = join(repoRoot(), 'test', 'fixtures', 'agent');
const SLEEP_JOB = join(FIXTURES, 'sleep-job.sh');
const SPAWN_TREE = join(FIXTURES, 'spawn-tree.sh');

/** The fast intervals most tests use; lease >= 2 x heartbeat as the agent demands. */
const FAST = ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '1500ms', '--grace', '2s'];
/**
 * For the tests where one builder must look dead to the other only when the
 * test says so: a lease with room for slow heartbeat pushes on a loaded machine.
 */
const LEASE_MS = 3000;
const RECLAIMABLE = ['--poll', '200ms', '--heartbeat', '300ms', '--lease', `${LEASE_MS}ms`, '--grace', '2s'];

before(async () => {
  // tsc does not copy the scripts, and a checkout may have lost their mode bits.
  for (const f of ['sleep-job.sh', 'spawn-tree.sh']) await chmod(join(FIXTURES, f), 0o755);
});

// ---------------------------------------------------------------- processes

/** Kills a fixture process we started, if it is still one of ours (a PID can be reused). */
function killFixture(pid: number): void {
  if (isGone(pid)) return;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!/sleep|fixtures\/agent/.test(cmd)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone meanwhile */
  }
}

type Line = LogLine;

interface AgentProc {
  builder: string;
  pid: number;
  home: string;
  /** Every stdout line so far, parsed (pino JSON); a line that is not JSON is kept as { raw }. */
  lines: Line[];
  stderr: () => string;
  /** Resolves at exit with the exit code (128 + n for a signal, as a shell says). */
  exit: Promise<number>;
  exitCode: () => number | null;
  child: ChildProcess;
  /** The first line from index `from` on that matches; rejects on timeout or if the agent exits first. */
  waitFor(match: string | ((l: Line) => boolean), opts?: { timeoutMs?: number; from?: number }): Promise<Line>;
  count(match: string | ((l: Line) => boolean)): number;
  signal(sig: NodeJS.Signals): void;
  dump(): string;
}

interface AgentOpts {
  args?: string[];
  env?: Record<string, string>;
  config?: string;
  /** Reuse a home (a restart of the same builder); default a new one. */
  home?: string;
}

/** Where fixture jobs record their PIDs; one per test. */
async function fixtureOut(): Promise<string> {
  const out = await tmpDir('agent-out-');
  onCleanup(async () => {
    // A killed agent leaves its build running: take down whatever the fixtures recorded.
    for (const f of await readdir(out).catch(() => [] as string[])) {
      if (!f.endsWith('.pids')) continue;
      for (const pid of (await readFile(join(out, f), 'utf8')).split('\n').filter(Boolean).map(Number)) killFixture(pid);
    }
  });
  return out;
}

async function startAgent(remote: string, builder: string, opts: AgentOpts = {}): Promise<AgentProc> {
  const home = opts.home ?? (await tmpDir(`agent-${builder}-`));
  const args = [cliPath(), 'agent', '--repo', remote, '--builder', builder, ...(opts.config ? ['--config', opts.config] : []), ...(opts.args ?? FAST)];
  // Whatever a build makes stays in the agent's temporary home, never in the default /root/artifacts.
  const env = { ...(await gitEnv()), NO_COLOR: '1', BUILDCOORD_HOME: home, BUILDCOORD_ARTIFACTS_DIR: join(home, 'artifacts'), ...opts.env };
  const child = spawn(process.execPath, args, { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = collectJsonLines(child.stdout!);
  let stderr = '';
  let code: number | null = null;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));
  const exit = new Promise<number>((resolve) =>
    child.on('exit', (c, sig) => {
      code = c ?? 128 + (sig === 'SIGKILL' ? 9 : sig === 'SIGTERM' ? 15 : 1);
      resolve(code);
    }),
  );
  // Newest cleanup first: the agent goes before its home and the fixture records.
  onCleanup(async () => {
    if (code !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exit;
  });
  const matcher = (m: string | ((l: Line) => boolean)) => (typeof m === 'string' ? (l: Line) => l.msg === m : m);
  const dump = () => `--- ${builder} (pid ${child.pid}) stdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n--- stderr:\n${stderr}`;
  const proc: AgentProc = {
    builder,
    pid: child.pid!,
    home,
    lines,
    child,
    exit,
    exitCode: () => code,
    stderr: () => stderr,
    dump,
    count: (m) => lines.filter(matcher(m)).length,
    signal: (sig) => void child.kill(sig),
    async waitFor(m, o = {}) {
      const f = matcher(m);
      const deadline = Date.now() + (o.timeoutMs ?? 15_000);
      for (;;) {
        const hit = lines.slice(o.from ?? 0).find(f);
        if (hit) return hit;
        if (code !== null) throw new Error(`${builder} exited (${code}) before logging ${String(m)}\n${dump()}`);
        if (Date.now() > deadline) throw new Error(`${builder} did not log ${String(m)} within ${o.timeoutMs ?? 15_000} ms\n${dump()}`);
        await sleep(25);
      }
    },
  };
  return proc;
}

// ---------------------------------------------------------------- repositories

interface Setup {
  remote: string;
  src: string;
  store: Store;
  out: string;
  config: string;
}

const MAKEFILE = 'all:\n\t@echo "make output for $$BUILDCOORD_JOB attempt $$BUILDCOORD_ATTEMPT"\n\tsleep 0.5\n';

/** A coordination remote (initialised), a source repository with a Makefile, a Store for the test itself, and a config file with the fixture job types. */
async function setup(opts: { initWithCli?: boolean } = {}): Promise<Setup> {
  const parent = await tmpDir('agent-remotes-');
  const remote = await makeBareRepo({ parent, name: 'coord.git' });
  const src = await makeBareRepo({ parent, name: 'src.git' });
  await seedRepo(src.url, { Makefile: MAKEFILE, 'README.md': 'a source to build\n' });
  const store = new Store({ remote: remote.dir, home: await tmpDir('tester-home-'), actor: 'tester' });
  onCleanup(() => store.close());
  if (opts.initWithCli) {
    const r = await runCli(['init', '--repo', remote.dir]);
    assert.equal(r.exitCode, 0, r.stderr);
  } else {
    await initLayout(store, ['build1', 'build2']);
  }
  const out = await fixtureOut();
  const config = join(parent, 'agent.json');
  await writeFile(
    config,
    JSON.stringify({
      builder: 'build1',
      types: {
        slow: { command: SLEEP_JOB, args: [] },
        tree: { command: SPAWN_TREE, args: [] },
        fail: { command: '/bin/false', args: [] },
      },
    }),
  );
  return { remote: remote.dir, src: src.dir, store, out, config };
}

function draft(s: Setup, type = 'make', description = ''): JobDraft {
  return { type, priority: 5, source: s.src, branch: 'main', commit: null, description, dependencies: [], timeout_seconds: null, retries: 0 };
}

async function enqueue(s: Setup, type = 'make'): Promise<Job> {
  return (await addJobs(s.store, [draft(s, type)])).result[0]!;
}

async function showJson<T>(bare: string, rev: string, path: string): Promise<T> {
  return JSON.parse(await git(bare, 'show', `${rev}:${path}`)) as T;
}

async function jobOf(remote: string, id: string): Promise<Job> {
  const file = await showJson<JobsFile>(remote, 'main', PATHS.jobs);
  const j = file.jobs.find((x) => x.id === id);
  assert.ok(j, `job ${id} is in jobs.json`);
  return j;
}

interface Commit {
  sha: string;
  subject: string;
  trailers: Record<string, string>;
  parents: number;
}

async function history(bare: string, rev = 'main'): Promise<Commit[]> {
  const text = await git(bare, 'log', '--format=%H %P%n%B%n@@END@@', rev);
  return text
    .split('@@END@@')
    .map((c) => c.trim())
    .filter(Boolean)
    .map((c) => {
      const [head, subject, ...body] = c.split('\n');
      const [sha, ...parents] = head!.split(' ').filter(Boolean);
      const trailers: Record<string, string> = {};
      for (const l of body) {
        const m = /^(Coord-[A-Za-z]+): (.*)$/.exec(l);
        if (m) trailers[m[1]!] = m[2]!;
      }
      return { sha: sha!, subject: subject ?? '', trailers, parents: parents.length };
    });
}

const aboutJob = (c: Commit, id: string) => (c.trailers['Coord-Job'] ?? '').split(' ').includes(id);

/** Polls fn until it returns a truthy value; that value, or an error naming what. */
async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 15_000, extra: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${extra()}`);
    await sleep(100);
  }
}

/** The PIDs a fixture job wrote for its job and attempt (leader first). */
async function fixturePids(out: string, id: string, attempt: number, ms = 10_000): Promise<number[]> {
  const file = join(out, `${id}-${attempt}.pids`);
  return until(`fixture PIDs in ${file}`, async () => {
    const pids = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map(Number);
    return pids.length >= 2 ? pids : null;
  }, ms);
}

async function stopAgent(a: AgentProc, ms = 15_000): Promise<number> {
  a.signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([a.exit, new Promise<number>((r) => (timer = setTimeout(() => r(-1), ms)))]);
  clearTimeout(timer);
  assert.notEqual(code, -1, `${a.builder} did not stop within ${ms} ms after SIGTERM\n${a.dump()}`);
  return code;
}

// ---------------------------------------------------------------- the tests

// A hung test fails on its own rather than at the runner's 5-minute limit; the
// after hook then kills whatever it left.
const T = { timeout: 60_000 };

describe('agent daemon (real processes, real git)', () => {
  it('two agents drain a queue of six make jobs: each completed once, three commits per job, heartbeats off main', T, async () => {
    const s = await setup({ initWithCli: true });
    const setupCommits = (await history(s.remote)).length;
    // Leases long enough that a busy machine never makes one builder look dead to the other.
    const args = ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '5s', '--grace', '5s'];
    const a1 = await startAgent(s.remote, 'build1', { args });
    const a2 = await startAgent(s.remote, 'build2', { args });
    await a1.waitFor('agent starting');
    await a2.waitFor('agent starting');

    const jobs = (await addJobs(s.store, Array.from({ length: 6 }, (_, i) => draft(s, 'make', `job ${i}`)))).result;
    const ids = jobs.map((j) => j.id);
    await until('six results pushed', async () => a1.count('result pushed') + a2.count('result pushed') === 6, 40_000, () => a1.dump() + a2.dump());

    const file = await showJson<JobsFile>(s.remote, 'main', PATHS.jobs);
    for (const id of ids) {
      const j = file.jobs.find((x) => x.id === id)!;
      assert.equal(j.status, 'completed', `${id}: ${JSON.stringify(j)}`);
      assert.equal(j.attempt, 1, `${id} ran once`);
      assert.equal(j.lease_expires_at, null);
      assert.ok(j.assigned_to === 'build1' || j.assigned_to === 'build2');
      assert.equal(j.result?.log, `${j.assigned_to}/logs/${id}.log`);
      const log = await git(s.remote, 'show', `main:${j.assigned_to}/logs/${id}.log`);
      assert.match(log, new RegExp(`^make output for ${id} attempt 1$`, 'm'), 'make’s own output is in the log');
      assert.match(log, /^sleep 0\.5$/m, 'make echoes the command it runs');
    }
    const ranOn = new Set(file.jobs.map((j) => j.assigned_to));
    assert.deepEqual([...ranOn].sort(), ['build1', 'build2'], 'both builders took work');
    for (const b of ['build1', 'build2']) {
      const st = await showJson<StatusFile>(s.remote, 'main', PATHS.status(b));
      assert.equal(st.status, 'success', `${b}: ${JSON.stringify(st)}`);
      assert.ok(st.last_build && ids.includes(st.last_build.id) && st.last_build.status === 'completed', `${b} last_build: ${JSON.stringify(st.last_build)}`);
      assert.equal(st.current_job, null);
    }

    // main: the setup, one enqueue for the batch, then one claim and one completion per job. Nothing else.
    const log = await history(s.remote);
    assert.equal(log.length, setupCommits + 1 + 2 * 6, log.map((c) => `${c.subject} ${JSON.stringify(c.trailers)}`).join('\n'));
    assert.ok(log.every((c) => c.parents <= 1), 'linear: no merges');
    for (const id of ids) {
      const ops = log.filter((c) => aboutJob(c, id)).map((c) => c.trailers['Coord-Op']).sort();
      assert.deepEqual(ops, ['claim', 'complete', 'enqueue'], `${id}: ${ops.join(', ')}`);
      const done = log.find((c) => aboutJob(c, id) && c.trailers['Coord-Op'] === 'complete')!;
      assert.equal(done.trailers['Coord-Attempt'], '1');
      assert.equal(done.trailers['Coord-Result'], 'completed');
    }
    assert.equal(log.filter((c) => c.trailers['Coord-Op'] === 'heartbeat').length, 0, 'no heartbeat on main');

    for (const b of ['build1', 'build2']) {
      assert.equal(await git(s.remote, 'rev-list', '--count', `heartbeat/${b}`), '1', `heartbeat/${b} is one parentless commit`);
      const hb = await showJson<HeartbeatFile>(s.remote, `heartbeat/${b}`, PATHS.heartbeat(b));
      assert.equal(hb.server, b);
      assert.equal(hb.healthy, true, JSON.stringify(hb));
      assert.equal(await git(s.remote, 'ls-tree', '-r', '--name-only', `heartbeat/${b}`), PATHS.heartbeat(b), 'holds only the heartbeat');
    }

    assert.equal(await stopAgent(a1), 0, a1.dump());
    assert.equal(await stopAgent(a2), 0, a2.dump());
    const final = await history(s.remote);
    assert.deepEqual(
      final.slice(0, final.length - log.length).map((c) => c.trailers['Coord-Op']),
      ['status', 'status'],
      'stopping adds only the two offline transitions',
    );
    for (const b of ['build1', 'build2']) assert.equal((await showJson<StatusFile>(s.remote, 'main', PATHS.status(b))).status, 'offline');
    assert.equal(a1.count('agent starting') + a2.count('agent starting'), 2);
    assert.equal(a1.count('reclaimed job from stale builder') + a2.count('reclaimed job from stale builder'), 0);
    const troubles = [...a1.lines, ...a2.lines].filter((l) => l.msg === 'degraded' || (typeof l.level === 'number' && l.level >= 50));
    assert.deepEqual(troubles, [], 'a healthy run: never degraded, no errors');
  });

  it('a SIGKILLed builder’s job is reclaimed after the lease and completed once, as attempt 2, by the other', T, async () => {
    const s = await setup();
    const a1 = await startAgent(s.remote, 'build1', { config: s.config, args: RECLAIMABLE, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '5' } });
    const job = await enqueue(s, 'slow');
    await a1.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids1 = await fixturePids(s.out, job.id, 1);
    assert.ok(!isGone(pids1[0]!), 'attempt 1 is running');
    const a2 = await startAgent(s.remote, 'build2', { config: s.config, args: RECLAIMABLE, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '1' } });
    await a2.waitFor('agent starting');
    await sleep(400); // build2 has heartbeated and looked at the queue: the job is build1's

    a1.signal('SIGKILL');
    assert.equal(await a1.exit, 137);
    assert.equal(a2.count('reclaimed job from stale builder'), 0, `nothing reclaimed while build1 was alive\n${a1.dump()}\n${a2.dump()}`);
    const lastBeat = await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'));

    const reclaimed = await a2.waitFor((l) => l.msg === 'reclaimed job from stale builder' && l.job === job.id, { timeoutMs: 15_000 });
    assert.equal(reclaimed.from, 'build1');
    await a2.waitFor((l) => l.msg === 'claimed' && l.job === job.id && l.attempt === 2);
    await a2.waitFor((l) => l.msg === 'result pushed' && l.job === job.id && l.attempt === 2, { timeoutMs: 15_000 });

    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'completed');
    assert.equal(j.attempt, 2);
    assert.equal(j.assigned_to, 'build2');
    assert.equal(j.reclaims, 1);
    const messages = await showJson<MessagesFile>(s.remote, 'main', PATHS.messages);
    const m = messages.messages.find((x) => x.subject === `reclaimed ${job.id} from build1`);
    assert.ok(m, JSON.stringify(messages.messages));
    assert.equal(m.from, 'build2');
    assert.equal(m.type, 'warning');
    assert.match(m.body, /attempt 1/);
    // Not a moment before build1's last heartbeat and its lease renewal on it ran out.
    const expiry = Math.max(Date.parse(lastBeat.timestamp) + LEASE_MS, ...(lastBeat.leases ?? []).map((l) => Date.parse(l.expires_at)));
    assert.ok(Date.parse(m.timestamp) >= expiry, `reclaimed at ${m.timestamp}, the lease ran until ${new Date(expiry).toISOString()}`);

    // build1's attempt may still be running as an orphan (the cleanup stops it):
    // with its agent gone, nothing speaks for it on main.
    const log = await history(s.remote);
    const completes = log.filter((c) => aboutJob(c, job.id) && c.trailers['Coord-Op'] === 'complete');
    assert.equal(completes.length, 1, 'completed exactly once');
    assert.equal(completes[0]!.trailers['Coord-Attempt'], '2');
    assert.equal(completes[0]!.trailers['Coord-Builder'], 'build2');
    assert.deepEqual(
      log.filter((c) => aboutJob(c, job.id)).map((c) => c.trailers['Coord-Op']).reverse(),
      ['enqueue', 'claim', 'reclaim', 'claim', 'complete'],
    );
    await git(s.remote, 'show', `main:build2/logs/${job.id}.log`);
    assert.equal(await stopAgent(a2), 0);
  });

  it('keeps running while the remote is away, reports itself degraded, and lands the result when it is back', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { config: s.config, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '2' } });
    const job = await enqueue(s, 'slow');
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    await fixturePids(s.out, job.id, 1);
    const pid = a.pid;

    const away = `${s.remote}.away`;
    // Every mark is taken before its action: what the action causes may be logged before the await returns.
    const from = a.lines.length;
    await rename(s.remote, away);
    let back = false;
    onCleanup(async () => {
      if (!back) await rename(away, s.remote).catch(() => {});
    });
    await a.waitFor((l) => l.msg === 'degraded' && (l.key === 'remote' || l.key === 'pending'), { from, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'job finished' && l.job === job.id, { from, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'degraded' && l.key === 'pending', { from, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'degraded' && l.key === 'heartbeat', { from, timeoutMs: 10_000 });
    // The finished result waits on disk, so even a restart would not lose it.
    const pending = join(a.home, 'agents', 'build1', 'pending', `${job.id}-1.json`);
    assert.ok(await stat(pending), 'the result is kept on disk while the remote is away');
    await sleep(800); // several polls and heartbeats fail meanwhile
    assert.equal(a.exitCode(), null, `still running\n${a.dump()}`);
    assert.equal(a.count('result pushed'), 0);

    const backAt = a.lines.length;
    await rename(away, s.remote);
    back = true;
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id, { from: backAt, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'recovered' && l.key === 'pending', { from: backAt });
    await a.waitFor((l) => l.msg === 'recovered' && l.key === 'remote', { from: backAt });
    await a.waitFor((l) => l.msg === 'recovered' && l.key === 'heartbeat', { from: backAt });
    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'completed');
    assert.equal(j.attempt, 1);
    await until('the pending file removed', async () => !(await stat(pending).catch(() => null)));

    assert.equal(a.exitCode(), null, 'never exited');
    assert.equal(a.pid, pid);
    assert.equal(a.count('agent starting'), 1, 'no restart, no crash loop');
    await until('a healthy heartbeat again', async () => (await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'))).healthy, 10_000);
    assert.equal(await stopAgent(a), 0);
  });

  it('SIGTERM while a short job runs: it finishes within the grace, is completed, then the builder is offline and exits 0', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', {
      config: s.config,
      env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '1' },
      args: ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '1500ms', '--grace', '10s'],
    });
    const job = await enqueue(s, 'slow');
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    await fixturePids(s.out, job.id, 1);
    const t = Date.now();
    assert.equal(await stopAgent(a), 0, a.dump());
    assert.ok(Date.now() - t < 8000, 'did not wait for the whole grace');
    const order = ['draining', 'job finished', 'result pushed', 'stopped'].map((m) => a.lines.findIndex((l) => l.msg === m));
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `in order: ${order.join(', ')}\n${a.dump()}`);
    assert.equal(a.count('handed back to the queue (drain)'), 0);

    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'completed');
    const st = await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'));
    assert.equal(st.status, 'offline');
    assert.equal(st.current_job, null);
    assert.equal(st.last_build?.id, job.id);
    const hb = await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'));
    assert.equal(hb.healthy, false);
    assert.deepEqual(hb.degraded_reasons, ['offline: clean shutdown']);
    assert.deepEqual(hb.leases, []);
  });

  it('SIGTERM while a long job runs with --grace 1s: stopped, its process tree gone, handed back to the queue, exit 0', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', {
      config: s.config,
      env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '30' },
      args: ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '1500ms', '--grace', '1s'],
    });
    const job = await enqueue(s, 'slow');
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids = await fixturePids(s.out, job.id, 1);
    const t = Date.now();
    assert.equal(await stopAgent(a), 0, a.dump());
    const took = Date.now() - t;
    assert.ok(took >= 900 && took < 10_000, `waited the grace, then stopped (${took} ms)`);
    await a.waitFor((l) => l.msg === 'handed back to the queue (drain)' && l.job === job.id);
    assert.deepEqual(await waitGone(pids), [], 'the fixture and its sleep are gone');
    assert.equal(a.count('result pushed'), 0);

    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'queued', JSON.stringify(j));
    assert.equal(j.assigned_to, null);
    assert.equal(j.lease_expires_at, null);
    assert.equal(j.attempt, 1, 'the next claim will be attempt 2');
    const ops = (await history(s.remote)).filter((c) => aboutJob(c, job.id)).map((c) => c.trailers['Coord-Op']);
    assert.deepEqual(ops.reverse(), ['enqueue', 'claim', 'hand-back']);
    assert.equal((await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'))).status, 'offline');
  });

  it('SIGINT drains like SIGTERM: the running job handed back, offline, exit 0', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { config: s.config, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '30' }, args: ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '1500ms', '--grace', '1s'] });
    const job = await enqueue(s, 'slow');
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids = await fixturePids(s.out, job.id, 1);
    a.signal('SIGINT');
    assert.equal(await a.exit, 0, a.dump());
    await a.waitFor((l) => l.msg === 'handed back to the queue (drain)' && l.job === job.id);
    assert.deepEqual(await waitGone(pids), []);
    assert.equal((await jobOf(s.remote, job.id)).status, 'queued');
    assert.equal((await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'))).status, 'offline');
  });

  it('SIGHUP reloads the config file: new intervals take effect, a broken file is refused and the old settings kept', T, async () => {
    const s = await setup();
    const cfg = join(await tmpDir('agent-hup-'), 'agent.json');
    const base = JSON.parse(await readFile(s.config, 'utf8')) as Record<string, unknown>;
    await writeFile(cfg, JSON.stringify({ ...base, poll: '200ms', heartbeat: '300ms', lease: '2s' }));
    const a = await startAgent(s.remote, 'build1', { config: cfg, args: [] });
    await a.waitFor('agent starting');
    await writeFile(cfg, JSON.stringify({ ...base, poll: '250ms', heartbeat: '400ms', lease: '2s', labels: { arch: 'riscv64' } }));
    a.signal('SIGHUP');
    const reloaded = await a.waitFor('config reloaded', { timeoutMs: 10_000 });
    assert.equal(reloaded.pollMs, 250);
    assert.equal(reloaded.heartbeatMs, 400);
    assert.deepEqual(reloaded.labels, { arch: 'riscv64' });

    await writeFile(cfg, JSON.stringify({ ...base, poll: 'banana' }));
    const from = a.lines.length;
    a.signal('SIGHUP');
    const refused = await a.waitFor((l) => /config reload refused/.test(String(l.msg)), { from, timeoutMs: 10_000 });
    assert.match(JSON.stringify(refused), /poll/);
    // Still working on the old settings: a job is claimed and done.
    const job = await enqueue(s);
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id, { timeoutMs: 15_000 });
    assert.equal(a.exitCode(), null);
    assert.equal(await stopAgent(a), 0);
  });

  it('SIGTERM during startup: it still stops, exits 0 and stays offline (no heartbeats after the offline one)', T, async () => {
    const s = await setup();
    const job = await enqueue(s);
    const a = await startAgent(s.remote, 'build1');
    await a.waitFor('agent starting', { timeoutMs: 15_000 });
    a.signal('SIGTERM'); // while the first heartbeat and poll are still on their way
    assert.equal(await stopAgent(a, 10_000), 0, a.dump());
    const final = await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'));
    assert.deepEqual(final.degraded_reasons, ['offline: clean shutdown'], JSON.stringify(final));
    assert.equal((await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'))).status, 'offline');
    const j = await jobOf(s.remote, job.id);
    assert.ok(j.status === 'queued' || j.status === 'completed', `claimed work is not left behind: ${JSON.stringify(j)}`);
    await sleep(700); // a few heartbeat intervals: nothing is still running in the background
    const after = await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'));
    assert.equal(after.timestamp, final.timestamp, 'no heartbeat after the offline one');
  });

  it('SIGTERM while a claim is being pushed: the job it claims is waited for and handed back, not left running', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', {
      config: s.config,
      env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '30' },
      args: ['--poll', '200ms', '--heartbeat', '300ms', '--lease', '1500ms', '--grace', '1s'],
    });
    await a.waitFor('agent starting');
    // The remote holds every claim push for a second and says when one arrives:
    // the signal then lands while the claim is in flight.
    const mark = join(s.out, 'claim-push');
    const hook = join(s.remote, 'hooks', 'pre-receive');
    await writeFile(
      hook,
      `#!/bin/sh\nwhile read old new ref; do\n  if [ "$ref" = refs/heads/main ] && git log -1 --format=%B "$new" | grep -q '^Coord-Op: claim$'; then touch '${mark}'; sleep 1; fi\ndone\nexit 0\n`,
    );
    await chmod(hook, 0o755);
    const job = await enqueue(s, 'slow');
    await until('a claim push at the remote', async () => Boolean(await stat(mark).catch(() => null)), 10_000, a.dump);
    a.signal('SIGTERM');
    assert.equal(await stopAgent(a, 15_000), 0, a.dump());
    const claimed = a.lines.findIndex((l) => l.msg === 'claimed' && l.job === job.id);
    const draining = a.lines.findIndex((l) => l.msg === 'draining');
    assert.ok(claimed >= 0 && draining >= 0, a.dump());
    await a.waitFor((l) => l.msg === 'handed back to the queue (drain)' && l.job === job.id);
    assert.deepEqual(await waitGone(await fixturePids(s.out, job.id, 1)), [], 'the build was stopped');
    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'queued', JSON.stringify(j));
    assert.equal(j.assigned_to, null);
    assert.equal((await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'))).status, 'offline');
  });

  it('a cancel request stops the running job’s whole process tree and ends it cancelled', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { config: s.config, env: { BC_TEST_OUT: s.out } });
    const job = await enqueue(s, 'tree');
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids = await fixturePids(s.out, job.id, 1);
    assert.equal(pids.length, 4, 'the fixture and its three children');
    assert.deepEqual(pids.filter(isGone), [], 'all running');

    await s.store.transact({
      op: 'cancel',
      reads: [PATHS.jobs],
      mutate: (view) => {
        const r = cancel(view.get<JobsFile>(PATHS.jobs)!, job.id, 'tester', new Date());
        return { result: r.job, writes: { [PATHS.jobs]: r.file }, message: `cancel ${job.id}`, trailers: { 'Coord-Job': job.id } };
      },
    });
    await a.waitFor((l) => l.msg === 'cancel requested: stopping the build' && l.job === job.id, { timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id, { timeoutMs: 10_000 });
    assert.deepEqual(await waitGone(pids), [], 'every process of the tree is gone');

    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'cancelled');
    assert.equal(j.cancel_requested, true);
    assert.match(String(j.result?.summary), /^cancelled while running/);
    const st = await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'));
    assert.equal(st.last_build?.status, 'cancelled');
    assert.equal(a.exitCode(), null, 'the agent goes on');
    assert.equal(await stopAgent(a), 0);
  });

  it('an agent restarted after a SIGKILL stops the build its predecessor left running and hands the job back', T, async () => {
    const s = await setup();
    const env = { BC_TEST_OUT: s.out };
    const a1 = await startAgent(s.remote, 'build1', { config: s.config, env });
    const job = await enqueue(s, 'tree');
    await a1.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids = await fixturePids(s.out, job.id, 1);
    a1.signal('SIGKILL');
    await a1.exit;
    await sleep(300);
    assert.deepEqual(pids.filter(isGone), [], 'the build outlives its agent: its own process group');
    assert.equal((await jobOf(s.remote, job.id)).status, 'running');

    // The same builder comes back (systemd's Restart=): its heartbeat is fresh, so nobody else would ever reclaim the job.
    const a2 = await startAgent(s.remote, 'build1', { config: s.config, env, home: a1.home });
    const back = await a2.waitFor((l) => l.msg === 'job left running by a previous agent handed back' && l.job === job.id, { timeoutMs: 15_000 });
    assert.equal(back.attempt, 1);
    assert.equal(back.status, 'queued');
    assert.equal(a2.count((l) => l.msg === 'stopped build processes left by a previous agent' && l.job === job.id && l.groups === 1), 1);
    assert.deepEqual(await waitGone(pids), [], 'every process of the orphaned build is stopped');
    // Queued again, it runs as a new attempt.
    await a2.waitFor((l) => l.msg === 'claimed' && l.job === job.id && l.attempt === 2);
    const pids2 = await fixturePids(s.out, job.id, 2);
    assert.equal(await stopAgent(a2), 0);
    assert.deepEqual(await waitGone(pids2), [], 'the drain stops attempt 2');
  });

  it('a builder that comes back after its job moved on is fenced: it stops its attempt and writes nothing about it', T, async () => {
    const s = await setup();
    const a1 = await startAgent(s.remote, 'build1', { config: s.config, args: RECLAIMABLE, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '30' } });
    const job = await enqueue(s, 'slow');
    await a1.waitFor((l) => l.msg === 'claimed' && l.job === job.id);
    const pids1 = await fixturePids(s.out, job.id, 1);
    const a2 = await startAgent(s.remote, 'build2', { config: s.config, args: RECLAIMABLE, env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '1' } });
    await a2.waitFor('agent starting');

    a1.signal('SIGSTOP'); // frozen: no heartbeat, no poll; its build goes on in its own process group
    await a2.waitFor((l) => l.msg === 'reclaimed job from stale builder' && l.job === job.id, { timeoutMs: 15_000 });
    await a2.waitFor((l) => l.msg === 'claimed' && l.job === job.id && l.attempt === 2);
    assert.ok(!isGone(pids1[0]!), 'attempt 1 still runs on the frozen builder');
    const resumedFrom = a1.lines.length;
    a1.signal('SIGCONT');

    const fenced = await a1.waitFor((l) => l.msg === 'job moved on without us: stopping it and writing nothing (fenced)' && l.job === job.id, { from: resumedFrom, timeoutMs: 10_000 });
    assert.equal(fenced.attempt, 1);
    await a1.waitFor((l) => l.msg === 'fenced attempt ended; nothing written' && l.job === job.id, { timeoutMs: 10_000 });
    assert.deepEqual(await waitGone(pids1), [], 'attempt 1’s processes are stopped');
    await a2.waitFor((l) => l.msg === 'result pushed' && l.job === job.id && l.attempt === 2, { timeoutMs: 15_000 });
    await sleep(500); // anything build1 might still push would land by now

    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'completed');
    assert.equal(j.attempt, 2);
    assert.equal(j.assigned_to, 'build2');
    const log = await history(s.remote);
    assert.equal(log.filter((c) => aboutJob(c, job.id) && c.trailers['Coord-Op'] === 'complete' && c.trailers['Coord-Attempt'] === '1').length, 0, 'nothing about attempt 1 completed');
    assert.equal(log.filter((c) => aboutJob(c, job.id) && c.trailers['Coord-Op'] === 'complete').length, 1);
    assert.equal(log.filter((c) => aboutJob(c, job.id) && c.trailers['Coord-Builder'] === 'build1' && c.trailers['Coord-Op'] !== 'claim').length, 0, 'build1 wrote only its original claim');
    assert.equal(a1.count((l) => l.msg === 'result pushed' && l.job === job.id), 0);
    assert.equal(a1.exitCode(), null, 'build1 goes on');
    assert.equal(await stopAgent(a1), 0, a1.dump());
    assert.equal(await stopAgent(a2), 0, a2.dump());
  });

  it('many heartbeats at a short interval leave main untouched and the heartbeat branch at one commit', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { args: ['--poll', '200ms', '--heartbeat', '100ms', '--lease', '1s', '--grace', '1s'] });
    await a.waitFor('agent starting');
    await until('the first heartbeat', async () => (await git(s.remote, 'rev-parse', '--verify', '--quiet', 'refs/heads/heartbeat/build1').catch(() => '')) !== '');
    await sleep(400); // past the start: the first poll is done
    const mainBefore = await git(s.remote, 'rev-parse', 'main');
    const hbBefore = await git(s.remote, 'rev-parse', 'heartbeat/build1');
    const tBefore = (await showJson<HeartbeatFile>(s.remote, hbBefore, PATHS.heartbeat('build1'))).timestamp;

    const seen = new Set<string>([hbBefore]);
    const end = Date.now() + 3000;
    while (Date.now() < end) {
      seen.add(await git(s.remote, 'rev-parse', 'heartbeat/build1'));
      assert.equal(await git(s.remote, 'rev-list', '--count', 'heartbeat/build1'), '1');
      await sleep(150);
    }
    const mainAfter = await git(s.remote, 'rev-parse', 'main');
    const hbAfter = await git(s.remote, 'rev-parse', 'heartbeat/build1');
    assert.equal(mainAfter, mainBefore, 'main did not move');
    assert.ok(seen.size >= 5, `the heartbeat was rewritten many times (${seen.size} distinct tips seen)`);
    assert.equal(await git(s.remote, 'rev-list', '--count', 'heartbeat/build1'), '1');
    assert.doesNotMatch(await git(s.remote, 'cat-file', '-p', hbAfter), /^parent /m, 'parentless');
    const hb = await showJson<HeartbeatFile>(s.remote, hbAfter, PATHS.heartbeat('build1'));
    assert.ok(hb.timestamp > tBefore, 'a newer heartbeat');
    assert.equal(hb.healthy, true);
    assert.equal((await history(s.remote)).filter((c) => c.trailers['Coord-Op'] === 'heartbeat').length, 0);
    // The old heartbeats are unreachable garbage on the remote, not history.
    assert.equal(await git(s.remote, 'for-each-ref', '--format=%(refname)', 'refs/heads/'), 'refs/heads/heartbeat/build1\nrefs/heads/main');
    assert.equal(await stopAgent(a), 0);
  });

  it('a failing job with --retries 1 runs a second attempt by itself, then ends failed', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { config: s.config });
    const job = (await addJobs(s.store, [{ ...draft(s, 'fail'), retries: 1 }])).result[0]!;
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id && l.attempt === 2, { timeoutMs: 15_000 });
    const j = await jobOf(s.remote, job.id);
    assert.equal(j.status, 'failed');
    assert.equal(j.attempt, 2);
    assert.equal(j.retried, 1);
    const ops = (await history(s.remote))
      .filter((c) => aboutJob(c, job.id))
      .map((c) => `${c.trailers['Coord-Op']}${c.trailers['Coord-Attempt'] ? ` ${c.trailers['Coord-Attempt']}` : ''}`)
      .reverse();
    assert.deepEqual(ops, ['enqueue', 'claim 1', 'complete 1', 'claim 2', 'complete 2']);
    assert.equal(a.count((l) => l.msg === 'claimed' && l.job === job.id), 2);
    const log = await runCli(['job', 'log', job.id, '--json', '--repo', s.remote], { env: { BUILDCOORD_HOME: await tmpDir('log-reader-') } });
    assert.equal(log.exitCode, 0, log.stderr);
    const shown = JSON.parse(log.stdout) as { id: string; attempt: number; status: string; path: string; log: string };
    assert.deepEqual([shown.id, shown.attempt, shown.status, shown.path], [job.id, 2, 'failed', `build1/logs/${job.id}.log`]);
    assert.match(shown.log, new RegExp(`job ${job.id} attempt 2`));
    assert.equal(await stopAgent(a), 0);
  });

  it('with --concurrency 2 it runs two jobs at once; when one ends, status.json names the other as current', T, async () => {
    const s = await setup();
    const a = await startAgent(s.remote, 'build1', { config: s.config, args: [...FAST, '--concurrency', '2'], env: { BC_TEST_OUT: s.out, BC_TEST_SLEEP: '30' } });
    const slow = (await addJobs(s.store, [{ ...draft(s, 'slow'), priority: 1 }])).result[0]!;
    const quick = (await addJobs(s.store, [{ ...draft(s, 'fail'), priority: 2 }])).result[0]!;
    await a.waitFor((l) => l.msg === 'claimed' && l.job === slow.id);
    await a.waitFor((l) => l.msg === 'claimed' && l.job === quick.id);
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === quick.id, { timeoutMs: 15_000 });
    assert.equal((await jobOf(s.remote, slow.id)).status, 'running', 'the other job still runs');
    const st = await showJson<StatusFile>(s.remote, 'main', PATHS.status('build1'));
    assert.equal(st.status, 'building');
    assert.equal(st.current_job?.id, slow.id, 'the job still running is the current one');
    assert.equal(st.last_build?.id, quick.id);
    assert.equal(await stopAgent(a), 0);
  });

  it('a builder that dies idle shows as stale in shared/health_dashboard.json: one commit by the other agent, none while nothing changes', T, async () => {
    const s = await setup();
    const a1 = await startAgent(s.remote, 'build1', { args: RECLAIMABLE });
    const a2 = await startAgent(s.remote, 'build2', { args: RECLAIMABLE });
    // One job puts both builders in the summary (it rides on the claim and completion commits).
    const job = await enqueue(s);
    const done = await until('a result', async () => (a1.count('result pushed') + a2.count('result pushed') === 1 ? true : null), 20_000, () => a1.dump() + a2.dump());
    assert.ok(done);
    type Dash = { builders: Record<string, { health: string; state: string }> };
    await until('both builders healthy in the summary', async () => {
      const d = await showJson<Dash>(s.remote, 'main', PATHS.dashboard);
      return d.builders.build1?.health === 'healthy' && d.builders.build2?.health === 'healthy';
    }, 15_000, () => a1.dump() + a2.dump());
    const dashboardCommits = async () => (await history(s.remote)).filter((c) => c.trailers['Coord-Op'] === 'dashboard');
    const before = (await dashboardCommits()).length;
    await sleep(LEASE_MS); // a whole lease with nothing changing
    assert.equal((await dashboardCommits()).length, before, 'no commit while every builder stays as recorded');

    // build1 dies without a word; build2, now the only builder with a fresh heartbeat, records it.
    a1.signal('SIGKILL');
    await a1.exit;
    const seen = await a2.waitFor((l) => l.msg === 'health dashboard updated', { timeoutMs: 4 * LEASE_MS });
    assert.deepEqual(seen.health, { build1: 'stale', build2: 'healthy' });
    const d = await showJson<Dash>(s.remote, 'main', PATHS.dashboard);
    assert.equal(d.builders.build1!.health, 'stale');
    assert.equal(d.builders.build2!.health, 'healthy');
    const after = await dashboardCommits();
    assert.equal(after.length, before + 1, 'one commit for the transition');
    assert.equal(after[0]!.trailers['Coord-Builder'], 'build2');
    await sleep(LEASE_MS);
    assert.equal((await dashboardCommits()).length, before + 1, 'and no more while build1 stays dead');
    assert.equal((await jobOf(s.remote, job.id)).status, 'completed');
    assert.equal(await stopAgent(a2), 0);
  });

  it('a hand-pushed invalid jobs.json: degraded in the heartbeat, claims nothing, changes nothing, recovers by itself after a fix', T, async () => {
    const s = await setup();
    const job = await enqueue(s);
    const work = await cloneWork(`file://${s.remote}`);
    const jobsPath = join(work, PATHS.jobs);
    const good = JSON.parse(await readFile(jobsPath, 'utf8')) as JobsFile;
    const bad = structuredClone(good);
    (bad.jobs[0] as unknown as Record<string, unknown>).priority = 0;
    const badSha = await pushFiles(work, { [PATHS.jobs]: JSON.stringify(bad, null, 2) + '\n' }, 'hand edit: priority 0');
    const badBlob = await git(s.remote, 'rev-parse', `main:${PATHS.jobs}`);

    const a = await startAgent(s.remote, 'build1');
    const degraded = await a.waitFor((l) => l.msg === 'degraded' && l.key === 'data', { timeoutMs: 10_000 });
    assert.match(String(degraded.reason), /coordination\/jobs\.json: \/jobs\/0\/priority/);
    const hb = await until(
      'an unhealthy heartbeat',
      async () => {
        const h = await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'));
        return h.healthy === false ? h : null;
      },
      10_000,
      a.dump,
    );
    assert.ok(hb.degraded_reasons?.some((r) => /coordination\/jobs\.json/.test(r)), JSON.stringify(hb.degraded_reasons));
    await sleep(800); // several polls and heartbeats on the broken file
    assert.equal(a.exitCode(), null, 'still running');
    assert.equal(a.count('claimed'), 0);
    assert.equal(await git(s.remote, 'rev-parse', 'main'), badSha, 'nothing pushed to main');
    assert.equal(await git(s.remote, 'rev-parse', `main:${PATHS.jobs}`), badBlob, 'the file is byte for byte as the person pushed it');
    assert.equal((await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'))).healthy, false, 'still reported');

    const fixedFrom = a.lines.length; // before the push: the agent may recover before pushFiles returns
    await pushFiles(work, { [PATHS.jobs]: JSON.stringify(good, null, 2) + '\n' }, 'hand edit: fixed');
    await a.waitFor((l) => l.msg === 'recovered' && l.key === 'data', { from: fixedFrom, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'claimed' && l.job === job.id, { from: fixedFrom });
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id, { timeoutMs: 15_000 });
    assert.equal((await jobOf(s.remote, job.id)).status, 'completed');
    await until('a healthy heartbeat', async () => (await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'))).healthy, 10_000);
    assert.equal(a.count('agent starting'), 1);
    assert.equal(await stopAgent(a), 0);
  });

  it('a hand-pushed invalid status.json of its own: degraded with the reason (not a stream of poll errors), claims nothing, recovers after a fix', T, async () => {
    const s = await setup();
    const job = await enqueue(s);
    const work = await cloneWork(`file://${s.remote}`);
    const statusPath = join(work, PATHS.status('build1'));
    const good = await readFile(statusPath, 'utf8');
    const bad = JSON.stringify({ ...(JSON.parse(good) as object), status: 'napping' }, null, 2) + '\n';
    await pushFiles(work, { [PATHS.status('build1')]: bad }, 'hand edit: a state that does not exist');
    const badBlob = await git(s.remote, 'rev-parse', `main:${PATHS.status('build1')}`);

    const a = await startAgent(s.remote, 'build1');
    const degraded = await a.waitFor((l) => l.msg === 'degraded' && l.key === 'data', { timeoutMs: 10_000 });
    assert.match(String(degraded.reason), /build1\/status\.json: \/status: /);
    await until('an unhealthy heartbeat', async () => (await showJson<HeartbeatFile>(s.remote, 'heartbeat/build1', PATHS.heartbeat('build1'))).healthy === false, 10_000, a.dump);
    await sleep(800);
    assert.equal(a.count('claimed'), 0);
    assert.equal(a.count('poll failed'), 0, 'a broken file is a degraded state, not an error per poll');
    assert.equal(await git(s.remote, 'rev-parse', `main:${PATHS.status('build1')}`), badBlob, 'left as the person pushed it');

    const fixedFrom = a.lines.length;
    await pushFiles(work, { [PATHS.status('build1')]: good }, 'hand edit: fixed');
    await a.waitFor((l) => l.msg === 'recovered' && l.key === 'data', { from: fixedFrom, timeoutMs: 10_000 });
    await a.waitFor((l) => l.msg === 'result pushed' && l.job === job.id, { timeoutMs: 15_000 });
    assert.equal(await stopAgent(a), 0);
  });

  it('refuses to start with an invalid config file: exit 2, one stderr line naming the field, nothing written', T, async () => {
    const parent = await tmpDir('agent-badcfg-');
    const remote = await makeBareRepo({ parent });
    const store = new Store({ remote: remote.dir, home: await tmpDir('tester-home-'), actor: 'tester' });
    onCleanup(() => store.close());
    await initLayout(store, ['build1']);
    const tip = await git(remote.dir, 'rev-parse', 'main');

    const cfg = join(parent, 'agent.json');
    await writeFile(cfg, JSON.stringify({ builder: 'build1', poll: 'soon' }));
    const r = await runCli(['agent', '--repo', remote.dir, '--config', cfg], { timeoutMs: 20_000 });
    assert.equal(r.exitCode, 2, r.stdout + r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /poll/);
    assert.ok(lines[0]!.includes(cfg), `names the file: ${lines[0]}`);
    assert.equal(r.stdout, '', 'not started: no log at all');

    // The same checks for a flag and for the lease rule.
    const flag = await runCli(['agent', '--repo', remote.dir, '--builder', 'build1', '--poll', 'soon'], { timeoutMs: 20_000 });
    assert.equal(flag.exitCode, 2);
    assert.match(flag.stderr.trim(), /^buildcoord: --poll "soon": expected a duration/);
    const lease = await runCli(['agent', '--repo', remote.dir, '--builder', 'build1', '--heartbeat', '1s', '--lease', '1s'], { timeoutMs: 20_000 });
    assert.equal(lease.exitCode, 2);
    assert.match(lease.stderr.trim(), /must be at least twice --heartbeat/);

    assert.equal(await git(remote.dir, 'rev-parse', 'main'), tip, 'nothing was written');
    assert.equal(await git(remote.dir, 'for-each-ref', '--format=%(refname)', 'refs/heads/heartbeat/'), '', 'not even a heartbeat');
  });
});
