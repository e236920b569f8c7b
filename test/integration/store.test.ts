// The transaction engine against real git: temporary bare repositories over
// file:// and a git daemon on 127.0.0.1, real child processes racing.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../agent/store/store.js';
import { addJobs, claimNext, completeJob, readJobs } from '../../agent/store/ops.js';
import { initLayout } from '../../agent/store/layout.js';
import { InvalidFileError, OperationError, PreconditionError, UnreachableError } from '../../agent/errors.js';
import { PATHS, type JobsFile } from '../../agent/model/types.js';
import { cleanupAll, cloneWork, git, makeBareRepo, pushFiles, repoRoot, runCli, startGitDaemon, tmpDir, jsonLines, runNode } from '../helpers/git.js';

after(cleanupAll);

const fixture = (name: string) => join(repoRoot(), 'dist', 'test', 'fixtures', `${name}.js`);

async function freshRemote(parent?: string, name?: string) {
  const repo = await makeBareRepo({ parent, name });
  const home = await tmpDir('bc-home-');
  const store = new Store({ remote: repo.url, home, actor: 'tester' });
  await initLayout(store, ['build1', 'build2']);
  return { repo, home, store };
}

function draft(description = '', extra: Partial<{ priority: number; dependencies: string[] }> = {}) {
  return { type: 'make', priority: extra.priority ?? 5, source: null, branch: 'main', commit: null, description, dependencies: extra.dependencies ?? [], timeout_seconds: null, retries: 0 };
}


describe('store over file://', () => {
  it('enqueues, claims by priority then age, and fences completion by attempt', async () => {
    const { store } = await freshRemote();
    const low = (await addJobs(store, [draft('low', { priority: 9 })])).result[0]!;
    const high = (await addJobs(store, [draft('high', { priority: 1 })])).result[0]!;
    const dependent = (await addJobs(store, [draft('after high', { priority: 1, dependencies: [high.id] })])).result[0]!;

    const first = await claimNext(store, { name: 'build1' }, 60_000);
    assert.equal(first.result.id, high.id, 'priority 1 runs first');
    assert.equal(first.result.attempt, 1);
    const second = await claimNext(store, { name: 'build2' }, 60_000);
    assert.equal(second.result.id, low.id, 'the dependent job waits for its dependency');

    await assert.rejects(completeJob(store, { id: high.id, builder: 'build2', attempt: 1, status: 'completed' }), PreconditionError);
    await assert.rejects(completeJob(store, { id: high.id, builder: 'build1', attempt: 2, status: 'completed' }), /no longer current/);
    await completeJob(store, { id: high.id, builder: 'build1', attempt: 1, status: 'completed' });
    await assert.rejects(completeJob(store, { id: high.id, builder: 'build1', attempt: 1, status: 'failed' }), /no longer current: the job is completed/);

    const third = await claimNext(store, { name: 'build1' }, 60_000);
    assert.equal(third.result.id, dependent.id);
    await assert.rejects(claimNext(store, { name: 'build1' }, 60_000), /no eligible job/);
    store.close();
  });

  it('writes canonical JSON, commits with trailers, and keeps main linear', async () => {
    const { repo, store } = await freshRemote();
    const job = (await addJobs(store, [draft('x')])).result[0]!;
    await claimNext(store, { name: 'build1' }, 60_000);
    const work = await cloneWork(repo.url);
    const text = await readFile(join(work, 'coordination/jobs.json'), 'utf8');
    assert.equal(text, JSON.stringify(JSON.parse(text), null, 2) + '\n', '2-space indent, trailing newline');
    assert.ok(text.indexOf('"$schema"') < text.indexOf('"version"'), '$schema first');
    const log = await git(work, 'log', '--format=%s%n%b%n--', '-n', '1');
    assert.match(log, new RegExp(`^claim ${job.id} on build1 \\(attempt 1\\)`));
    assert.match(log, /Coord-Op: claim/);
    assert.match(log, new RegExp(`Coord-Job: ${job.id}`));
    assert.match(log, /Coord-Builder: tester/);
    assert.match(log, /Coord-Nonce: [0-9a-f]{16}/);
    assert.equal(await git(work, 'rev-list', '--merges', '--count', 'HEAD'), '0');
    assert.equal(await git(work, 'fsck', '--strict', '--no-dangling'), '');
    store.close();
  });

  it('re-runs the mutation on fresh state when another writer moved main (no lost job)', async () => {
    const { repo, home, store } = await freshRemote();
    await addJobs(store, [draft('mine first')]);
    // A person pushes an edit from their own checkout: our cached tip is now stale.
    const work = await cloneWork(repo.url);
    const jobs = JSON.parse(await readFile(join(work, 'coordination/jobs.json'), 'utf8')) as JobsFile;
    jobs.jobs[0]!.description = 'edited by hand';
    await pushFiles(work, { 'coordination/jobs.json': JSON.stringify(jobs, null, 2) + '\n' }, 'hand edit');
    const r = await addJobs(store, [draft('mine second')]);
    assert.equal(r.pushAttempts, 2, 'first push rejected, second on fresh state');
    const after = await readJobs(new Store({ remote: repo.url, home, actor: 'reader' }));
    assert.deepEqual(
      after.jobs.map((j) => j.description),
      ['edited by hand', 'mine second'],
      'the hand edit and both enqueues survive',
    );
    store.close();
  });

  it('a refusal on the remembered tip is checked against a fresh fetch before it is final', async () => {
    const { repo, store } = await freshRemote();
    const other = new Store({ remote: repo.url, home: await tmpDir('bc-home-'), actor: 'other' });
    await addJobs(store, [draft('first')]);
    await claimNext(store, { name: 'build1' }, 60_000); // store now remembers main from its own push
    const late = (await addJobs(other, [draft('added elsewhere')])).result[0]!;
    const c = await claimNext(store, { name: 'build1' }, 60_000);
    assert.equal(c.result.id, late.id, 'not "no eligible job" from the old state');
    store.close();
    other.close();
  });

  it('refuses a hand-pushed invalid file and leaves it byte-for-byte untouched', async () => {
    const { repo, home, store } = await freshRemote();
    await addJobs(store, [draft('ok')]);
    const work = await cloneWork(repo.url);
    const jobs = JSON.parse(await readFile(join(work, 'coordination/jobs.json'), 'utf8')) as JobsFile;
    (jobs.jobs[0] as unknown as Record<string, unknown>).priority = 0;
    const bad = JSON.stringify(jobs, null, 4); // not canonical either, on purpose
    const badSha = await pushFiles(work, { 'coordination/jobs.json': bad }, 'bad hand edit');
    await assert.rejects(claimNext(store, { name: 'build1' }, 60_000), (e: unknown) => {
      assert.ok(e instanceof InvalidFileError);
      assert.match((e as Error).message, /^coordination\/jobs\.json: \/jobs\/0\/priority: /);
      return true;
    });
    const viaCli = await runCli(['job', 'add', '--type', 'make', '--repo', repo.url], { env: { BUILDCOORD_HOME: home } });
    assert.equal(viaCli.exitCode, 1);
    assert.equal(viaCli.stderr.trim().split('\n').length, 1, 'one line');
    assert.match(viaCli.stderr, /coordination\/jobs\.json: \/jobs\/0\/priority/);
    // A file the command does not need does not block it.
    const lockOk = await runCli(['validate', '--repo', repo.url], { env: { BUILDCOORD_HOME: home } });
    assert.equal(lockOk.exitCode, 2);
    assert.match(lockOk.stderr, /coordination\/jobs\.json: \/jobs\/0\/priority/);
    await git(work, 'fetch', '-q');
    assert.equal(await git(work, 'rev-parse', 'origin/main'), badSha, 'nothing was pushed');
    assert.equal(await git(work, 'show', 'origin/main:coordination/jobs.json'), bad.trimEnd());
    store.close();
  });

  it('a soft read that is invalid is left out with its problem, and does not stop the operation', async () => {
    const { repo, store } = await freshRemote();
    const work = await cloneWork(repo.url);
    await pushFiles(work, { 'build2/status.json': '{"server": "build2", "status": "exploded"}\n' }, 'broken status of another builder');
    const r = await store.transact({
      op: 'probe',
      reads: [PATHS.jobs],
      softReads: [PATHS.status('build1'), PATHS.status('build2')],
      mutate: (view) => ({ result: { b1: view.get(PATHS.status('build1')) !== undefined, b2: view.get(PATHS.status('build2')), problems: view.problems } }),
    });
    assert.equal(r.result.b1, true);
    assert.equal(r.result.b2, undefined);
    assert.ok(r.result.problems.some((p) => p.startsWith('build2/status.json: ')));
    store.close();
  });

  it('reports a syntax error with its position and does not block commands that do not read the file', async () => {
    const { repo, home } = await freshRemote();
    const work = await cloneWork(repo.url);
    await pushFiles(work, { 'coordination/messages.json': '{ "version": 1, "messages": [ }\n' }, 'broken messages');
    const add = await runCli(['job', 'add', '--type', 'make', '--priority', '3', '--branch', 'main', '--source', '/src', '--timeout', '1m', '--retries', '0', '--repo', repo.url], {
      env: { BUILDCOORD_HOME: home },
    });
    assert.equal(add.exitCode, 0, add.stderr);
    const v = await runCli(['validate', '--repo', repo.url], { env: { BUILDCOORD_HOME: home } });
    assert.equal(v.exitCode, 2);
    assert.match(v.stderr, /^coordination\/messages\.json: \/: invalid JSON at 1:\d+/m);
  });

  it('exits 3 with one line when the remote cannot be reached, and leaves nothing behind', async () => {
    const home = await tmpDir('bc-home-');
    const missing = join(home, 'no-such-remote.git');
    const r = await runCli(['job', 'add', '--type', 'make', '--repo', `file://${missing}`], { env: { BUILDCOORD_HOME: home } });
    assert.equal(r.exitCode, 3, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /cannot reach coordination remote/);
    const store = new Store({ remote: `file://${missing}`, home, actor: 'x' });
    await assert.rejects(readJobs(store), UnreachableError);
    store.close();
  });

  it('a process killed with SIGKILL while holding the local lock does not block the next command', async () => {
    const { repo, home, store } = await freshRemote();
    store.close();
    // The child takes the lock and is killed while holding it.
    const holder = join(await tmpDir('bc-holder-'), 'hold.mjs');
    const lockMod = join(repoRoot(), 'dist', 'agent', 'store', 'locallock.js');
    await writeFile(
      holder,
      `import { LocalLock } from ${JSON.stringify(lockMod)};\n` +
        `const l = new LocalLock(process.argv[2]);\n` +
        `l.with(async () => { process.stdout.write('held\\n'); await new Promise(() => setInterval(() => {}, 1000)); });\n`,
    );
    const cloneDir = new Store({ remote: repo.url, home, actor: 'x' }).cloneDir;
    const child = spawn(process.execPath, [holder, cloneDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await stat(`${cloneDir}.lock`); // it really holds the lock
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const t0 = Date.now();
    const r = await runCli(['job', 'add', '--type', 'make', '--repo', repo.url], { env: { BUILDCOORD_HOME: home } });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms: the dead holder's lock was broken at once, not after the stale period`);
  });

  it('a push whose outcome is unknown is resolved by finding our own commit on the remote', async () => {
    const { repo, home } = await freshRemote();
    let dropped = false;
    // A runner that performs the push but reports a dropped connection, once.
    const { spawnGit } = await import('../../agent/store/git.js');
    const store = new Store({
      remote: repo.url,
      home,
      actor: 'flaky',
      git: async (dir, args, opts) => {
        const r = await spawnGit(dir, args, opts);
        if (args[0] === 'push' && !dropped) {
          dropped = true;
          return { exitCode: 128, stdout: '', stderr: 'fatal: the remote end hung up unexpectedly' };
        }
        return r;
      },
    });
    const r = await addJobs(store, [draft('once')]);
    assert.equal(dropped, true);
    assert.equal(r.pushAttempts, 1, 'no second push: the first one had landed');
    const jobs = await readJobs(store);
    assert.equal(jobs.jobs.filter((j) => j.description === 'once').length, 1, 'added exactly once');
    store.close();
  });

  it('a push that lands only after we looked (lost answer, late landing) still enqueues once, without an error', async () => {
    const { repo, home } = await freshRemote();
    const { spawnGit } = await import('../../agent/store/git.js');
    let late: string[] | null = null;
    let first = true;
    const store = new Store({
      remote: repo.url,
      home,
      actor: 'late',
      maxBackoffMs: 5,
      git: async (dir, args, opts) => {
        if (args[0] === 'push' && first) {
          first = false;
          late = args; // the remote takes it, but only after our fetch below has looked
          return { exitCode: 128, stdout: '', stderr: 'fatal: the remote end hung up unexpectedly' };
        }
        const r = await spawnGit(dir, args, opts);
        if (args[0] === 'fetch' && late) {
          const push = late;
          late = null;
          assert.equal((await spawnGit(dir, push, opts)).exitCode, 0);
        }
        return r;
      },
    });
    const r = await addJobs(store, [draft('late landing')]);
    const file = await readJobs(new Store({ remote: repo.url, home: await tmpDir('bc-home-'), actor: 'reader' }));
    assert.deepEqual(
      file.jobs.map((j) => j.id),
      [r.result[0]!.id],
      'exactly one job, the one reported',
    );
    store.close();
  });

  it('gives up with a clear error after bounded attempts when main keeps moving', async () => {
    const { repo, home } = await freshRemote();
    const { spawnGit } = await import('../../agent/store/git.js');
    const store = new Store({
      remote: repo.url,
      home,
      actor: 'loser',
      maxAttempts: 3,
      maxBackoffMs: 5,
      git: async (dir, args, opts) =>
        args[0] === 'push' ? { exitCode: 1, stdout: `To x\n!\tabc:refs/heads/main\t[rejected] (fetch first)\nDone\n`, stderr: '' } : spawnGit(dir, args, opts),
    });
    await assert.rejects(addJobs(store, [draft('never')]), (e: unknown) => e instanceof OperationError && /gave up after 3 push attempts/.test((e as Error).message));
    store.close();
    const check = new Store({ remote: repo.url, home: await tmpDir('bc-home-'), actor: 'reader' });
    assert.equal((await readJobs(check)).jobs.length, 0, 'nothing landed');
    check.close();
  });
});

describe('store over git:// (git daemon on 127.0.0.1)', () => {
  it('init, enqueue, claim and complete over the network transport', async () => {
    const base = await tmpDir('bc-daemon-');
    const { store, repo } = await freshRemote(base, 'coord.git');
    store.close();
    const daemon = await startGitDaemon(base);
    const url = daemon.url('coord.git');
    const s1 = new Store({ remote: url, home: await tmpDir('bc-home-'), actor: 'build1' });
    const s2 = new Store({ remote: url, home: await tmpDir('bc-home-'), actor: 'build2' });
    const [a, b] = await Promise.all([addJobs(s1, [draft('from 1')]), addJobs(s2, [draft('from 2')])]);
    const claims = await Promise.all([claimNext(s1, { name: 'build1' }, 60_000), claimNext(s2, { name: 'build2' }, 60_000)]);
    assert.notEqual(claims[0].result.id, claims[1].result.id, 'each job claimed once');
    assert.deepEqual(new Set(claims.map((c) => c.result.id)), new Set([a.result[0]!.id, b.result[0]!.id]));
    await completeJob(s1, { id: claims[0].result.id, builder: 'build1', attempt: 1, status: 'completed' });
    const file = await readJobs(s2);
    assert.equal(file.jobs.find((j) => j.id === claims[0].result.id)!.status, 'completed');
    assert.ok(repo.dir);
    s1.close();
    s2.close();
    await daemon.stop();
    await assert.rejects(readJobs(s2), UnreachableError);
    s2.close();
  });
});

describe('races between real processes', () => {
  const jobsCount = Number(process.env.RACE_JOBS ?? 200);
  const procs = 8;

  it(`${procs} processes drain ${jobsCount} jobs: each claimed exactly once and completed once`, { timeout: 240_000 }, async () => {
    const { repo, store } = await freshRemote();
    await addJobs(
      store,
      Array.from({ length: jobsCount }, (_, i) => draft(`job ${i}`)),
    );
    store.close();
    const startAt = Date.now() + 1500;
    const runs = await Promise.all(
      Array.from({ length: procs }, async (_, i) => runNode([fixture('claimer'), repo.url, await tmpDir('bc-home-'), `b${i + 1}`, '--start-at', String(startAt)])),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const claims = runs.flatMap((r) => jsonLines(r.stdout)).filter((l) => l.event === 'claim');
    const ids = claims.map((c) => c.id as string);
    assert.equal(ids.length, jobsCount, 'one claim per job');
    assert.equal(new Set(ids).size, jobsCount, 'no job claimed twice');
    assert.ok(claims.every((c) => c.attempt === 1));
    const final = await readJobs(new Store({ remote: repo.url, home: await tmpDir('bc-home-'), actor: 'reader' }));
    assert.equal(final.jobs.length, jobsCount);
    assert.ok(final.jobs.every((j) => j.status === 'completed' && j.attempt === 1));
    // No fairness is asserted: a claimer that completes at once and claims again
    // keeps winning (it knows main without fetching). Real builders build between
    // claims; here only exactly-once matters.
    const work = await cloneWork(repo.url);
    // init + 1 enqueue + a claim and a completion per job, nothing else.
    assert.equal(Number(await git(work, 'rev-list', '--count', 'HEAD')), 2 + 2 * jobsCount);
  });

  it(`${procs} processes enqueue at once: every enqueue lands, none lost or duplicated`, { timeout: 240_000 }, async () => {
    const { repo, store } = await freshRemote();
    store.close();
    const each = Math.max(2, Math.floor(jobsCount / 20));
    const startAt = Date.now() + 1500;
    const runs = await Promise.all(
      Array.from({ length: procs }, async (_, i) => runNode([fixture('enqueuer'), repo.url, await tmpDir('bc-home-'), `p${i + 1}`, String(each), '--start-at', String(startAt)])),
    );
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const landed = runs.flatMap((r) => jsonLines(r.stdout)).filter((l) => l.event === 'enqueued').map((l) => l.id as string);
    assert.equal(landed.length, procs * each);
    const final = await readJobs(new Store({ remote: repo.url, home: await tmpDir('bc-home-'), actor: 'reader' }));
    assert.deepEqual(final.jobs.map((j) => j.id).sort(), [...landed].sort(), 'exactly the reported jobs, once each');
    const pushes = runs.flatMap((r) => jsonLines(r.stdout)).filter((l) => l.event === 'done').reduce((n, l) => n + (l.pushes as number), 0);
    assert.ok(pushes >= landed.length);
  });
});

describe('local clone hygiene', () => {
  it('the private clone is bare: no working tree to leave dirty', async () => {
    const { store } = await freshRemote();
    await addJobs(store, [draft('x')]);
    const entries = await readdir(store.cloneDir);
    assert.ok(entries.includes('HEAD') && entries.includes('objects'));
    assert.equal(await git(store.cloneDir, 'rev-parse', '--is-bare-repository'), 'true');
    store.close();
  });
});
