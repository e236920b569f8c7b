// Every CLI command end to end as a real child process (node dist/agent/cli/main.js)
// against real temporary git repositories, plus the pre-commit hook that
// `init` ships, run by a real `git commit`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cleanupAll, cliPath, cloneWork, git, gitEnv, runCli, tmpDir, tryGit, type CliResult } from '../helpers/git.js';

after(cleanupAll);

type Obj = Record<string, unknown>;

// The helpers' runCli strips the final newline of stdout and stderr, as execa does.
function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

function json<T = Obj>(r: CliResult): T {
  assert.equal(r.exitCode, 0, `exit 0 expected: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

describe('buildcoord against a bare repository on this host', () => {
  let bare = '';
  let home = '';
  let env: Record<string, string> = {};
  const bc = (...args: string[]) => runCli([...args, '--repo', bare], { env });

  let first = ''; // a plain job
  let second = ''; // every flag, after `first`

  before(async () => {
    bare = path.join(await tmpDir('e2e-remote-'), 'fleet', 'coord.git');
    home = await tmpDir('e2e-home-');
    env = { BUILDCOORD_HOME: home, USER: 'tester' };
  });

  it('init creates the bare repository and its layout', async () => {
    const r = await bc('init');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^initialized .*coord\.git \([0-9a-f]{12}\)$/);
    const files = lines(await git(bare, 'ls-tree', '-r', '--name-only', 'main'));
    for (const f of ['coordination/jobs.json', 'coordination/locks.json', 'coordination/messages.json', 'shared/build_config.json', 'build1/status.json', 'build2/status.json', '.githooks/pre-commit', 'schemas/jobs.schema.json', 'README.md']) {
      assert.ok(files.includes(f), `${f} in the new repository`);
    }
    assert.match(await git(bare, 'ls-tree', 'main', '.githooks/pre-commit'), /^100755 /, 'the hook is executable');

    const again = await bc('init');
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /already a coordination repository; nothing changed/);
  });

  it('job add prints the id; --json prints {"id": ...}', async () => {
    const r = await bc('job', 'add', '--type', 'make');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^job_\d{8}T\d{6}Z_[0-9a-f]{10}$/);
    first = r.stdout.trim();

    const all = await bc(
      'job', 'add',
      '--type', 'maven',
      '--source', 'https://example.org/fleet/app.git',
      '--branch', 'release/2.1',
      '--commit', 'abcdef1',
      '--priority', '2',
      '--after', first,
      '--on', 'b1',
      '--label', 'os=linux',
      '--label', 'arch=x86_64',
      '--timeout', '30m',
      '--retries', '3',
      '--description', 'nightly release build',
      '--json',
    );
    const out = json<{ id: string }>(all);
    assert.deepEqual(Object.keys(out), ['id']);
    assert.match(out.id, /^job_\d{8}T\d{6}Z_[0-9a-f]{10}$/);
    // b1 has no directory on main (init made build1 and build2): queued all the same, with a warning.
    assert.equal(all.stderr, `warning: no builder b1 on main yet (known: build1, build2): ${out.id} waits until one by that name starts`);
    second = out.id;
    assert.notEqual(second, first);
  });

  it('job list: a table in run order, and --json an array of jobs', async () => {
    const table = await bc('job', 'list');
    assert.equal(table.exitCode, 0, table.stderr);
    const rows = lines(table.stdout);
    assert.match(rows[0]!, /^ID\s+STATUS\s+PRI\s+TYPE\s+BRANCH\s+ASSIGNED\s+ATT\s+AGE\s+NOTE$/);
    assert.equal(rows.length, 3);
    // Priority 2 sorts before priority 5; the note says why it waits.
    assert.match(rows[1]!, new RegExp(`^${second}\\s+queued\\s+2\\s+maven\\s+release/2\\.1\\s+-\\s+0\\s+\\S+\\s+dependencies$`));
    assert.match(rows[2]!, new RegExp(`^${first}\\s+queued\\s+5\\s+make\\s+main\\s+-\\s+0\\s+\\S+$`));

    const list = json<Obj[]>(await bc('job', 'list', '--json'));
    assert.ok(Array.isArray(list));
    assert.deepEqual(
      list.map((j) => ({ id: j.id, status: j.status, assigned_to: j.assigned_to, attempt: j.attempt })),
      [
        { id: second, status: 'queued', assigned_to: null, attempt: 0 },
        { id: first, status: 'queued', assigned_to: null, attempt: 0 },
      ],
    );
  });

  it('job show: text, and --json with every flag as given', async () => {
    const text = await bc('job', 'show', second);
    assert.equal(text.exitCode, 0, text.stderr);
    const field = (name: string) => lines(text.stdout).find((l) => l.startsWith(`${name} `))?.replace(/^\S+\s+/, '');
    assert.equal(field('id'), second);
    assert.equal(field('type'), 'maven');
    assert.equal(field('status'), 'queued');
    assert.equal(field('priority'), '2 (1 is highest)');
    assert.equal(field('branch'), 'release/2.1');
    assert.equal(field('commit'), 'abcdef1');
    assert.equal(field('dependencies'), first);
    assert.equal(field('on'), 'b1');
    assert.equal(field('labels'), 'arch=x86_64 os=linux');
    assert.equal(field('timeout'), '1800s');

    const job = json(await bc('job', 'show', second, '--json'));
    assert.deepEqual(
      {
        id: job.id,
        type: job.type,
        priority: job.priority,
        source: job.source,
        branch: job.branch,
        commit: job.commit,
        description: job.description,
        dependencies: job.dependencies,
        on: job.on,
        labels: job.labels,
        timeout_seconds: job.timeout_seconds,
        retries: job.retries,
        status: job.status,
        attempt: job.attempt,
        created_by: job.created_by,
      },
      {
        id: second,
        type: 'maven',
        priority: 2,
        source: 'https://example.org/fleet/app.git',
        branch: 'release/2.1',
        commit: 'abcdef1',
        description: 'nightly release build',
        dependencies: [first],
        on: 'b1',
        labels: { arch: 'x86_64', os: 'linux' },
        timeout_seconds: 1800,
        retries: 3,
        status: 'queued',
        attempt: 0,
        created_by: 'tester',
      },
    );

    // A unique prefix is enough.
    assert.equal(json(await bc('job', 'show', second.slice(0, -3), '--json')).id, second);
  });

  it('job claim --json prints the claimed job; with nothing eligible it exits 1', async () => {
    const job = json(await bc('job', 'claim', '--builder', 'b1', '--json'));
    assert.equal(job.id, first, 'the job with priority 2 waits for its dependency');
    assert.equal(job.status, 'running');
    assert.equal(job.assigned_to, 'b1');
    assert.equal(job.attempt, 1);
    assert.ok(Date.parse(String(job.lease_expires_at)) > Date.parse(String(job.started_at)));

    const none = await bc('job', 'claim', '--builder', 'b1');
    assert.equal(none.exitCode, 1);
    assert.equal(none.stdout, '');
    assert.equal(none.stderr, 'buildcoord: no eligible job');
  });

  it('job complete: once by the holder, then refused', async () => {
    const ok = await bc('job', 'complete', first, '--builder', 'b1', '--attempt', '1', '--status', 'completed', '--summary', 'built fine');
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.equal(ok.stdout, `${first} completed (attempt 1 on b1)`);

    const again = await bc('job', 'complete', first, '--builder', 'b1', '--attempt', '1', '--status', 'failed');
    assert.equal(again.exitCode, 1);
    assert.equal(again.stdout, '');
    assert.match(again.stderr, /^buildcoord: job \S+ attempt 1 on b1 is no longer current: the job is completed.*$/);
    assert.equal(lines(again.stderr).length, 1);

    const shown = json(await bc('job', 'show', first, '--json'));
    assert.equal(shown.status, 'completed');
    assert.deepEqual(shown.result, { summary: 'built fine' });
  });

  it('the dependent job becomes claimable, then the queue is empty', async () => {
    const withoutLabels = await bc('job', 'claim', '--builder', 'b1');
    assert.equal(withoutLabels.exitCode, 1, 'the job needs labels b1 did not state');
    const job = json(await bc('job', 'claim', '--builder', 'b1', '--label', 'os=linux', '--label', 'arch=x86_64', '--json'));
    assert.equal(job.id, second);
    assert.equal(job.attempt, 1);
    // It was added with --retries 3: a failure puts it back in the queue by itself.
    const done = await bc('job', 'complete', second, '--builder', 'b1', '--attempt', '1', '--status', 'failed');
    assert.equal(done.exitCode, 0, done.stderr);
    assert.equal(done.stdout, `${second} failed (attempt 1 on b1); queued again: automatic retry 1 of 3`);

    const empty = await bc('job', 'claim', '--builder', 'b2', '--label', 'os=linux', '--label', 'arch=x86_64');
    assert.equal(empty.exitCode, 1, 'the retry is still pinned to b1');
    assert.equal(empty.stderr, 'buildcoord: no eligible job');
    const again = json(await bc('job', 'claim', '--builder', 'b1', '--label', 'os=linux', '--label', 'arch=x86_64', '--json'));
    assert.equal(again.id, second);
    assert.equal(again.attempt, 2);
    assert.equal(again.retried, 1);
    const final = await bc('job', 'complete', second, '--builder', 'b1', '--attempt', '2', '--status', 'failed', '--json');
    assert.equal(json(final).status, 'queued', 'two retries left');

    const list = json<Obj[]>(await bc('job', 'list', '--json'));
    assert.deepEqual(
      list.map((j) => [j.id, j.status, j.assigned_to, j.attempt]),
      [
        [second, 'queued', null, 2],
        [first, 'completed', 'b1', 1],
      ],
    );
    // --builder on `job list` filters like --assigned.
    const mine = json<Obj[]>(await bc('job', 'list', '--builder', 'b2', '--all', '--json'));
    assert.deepEqual(mine, [], 'b2 ran nothing');
    const b1 = json<Obj[]>(await bc('job', 'list', '--builder', 'b1', '--all', '--json'));
    assert.deepEqual(b1.map((j) => j.id), [first]);
    const cancelled = await bc('job', 'cancel', second);
    assert.equal(cancelled.exitCode, 0, cancelled.stderr);
    const table = await bc('job', 'list');
    assert.equal(lines(table.stdout).length, 2, 'completed jobs are hidden in the table by default');
  });

  it('validate (remote main) is clean after all of that', async () => {
    const r = await bc('validate');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^\d+ files valid \(.*coord\.git main [0-9a-f]{12}\)$/);
  });

  it('validate DIR: exit 0 on a checkout, exit 2 with FILE: /pointer: message lines on broken files', async () => {
    const work = await cloneWork(`file://${bare}`);
    const good = await bc('validate', work);
    assert.equal(good.exitCode, 0, good.stderr);
    assert.equal(good.stderr, '');
    assert.match(good.stdout, /^\d+ files valid \(/);

    const jobsPath = path.join(work, 'coordination/jobs.json');
    const doc = JSON.parse(await readFile(jobsPath, 'utf8')) as { jobs: Obj[] };
    doc.jobs[0]!.priority = 0;
    doc.jobs[0]!.colour = 'red';
    await writeFile(jobsPath, JSON.stringify(doc, null, 2) + '\n');
    await writeFile(path.join(work, 'build1/status.json'), '{"server": "build1",}\n');

    const bad = await bc('validate', work);
    assert.equal(bad.exitCode, 2);
    assert.equal(bad.stdout, '');
    const problems = lines(bad.stderr);
    assert.ok(problems.length >= 3, bad.stderr);
    for (const l of problems) assert.match(l, /^[\w./-]+\.json: \/\S*: \S.*$/, `FILE: /pointer: message: ${l}`);
    assert.ok(problems.some((l) => /^build1\/status\.json: \/: invalid JSON at 1:\d+: /.test(l)), bad.stderr);
    assert.ok(problems.some((l) => l.startsWith('coordination/jobs.json: /jobs/0/priority: ')), bad.stderr);
    assert.ok(problems.some((l) => l.startsWith('coordination/jobs.json: /jobs/0/colour: unknown field "colour"')), bad.stderr);

    const json2 = await bc('validate', work, '--json');
    assert.equal(json2.exitCode, 2);
    const report = JSON.parse(json2.stdout) as { checked: number; problems: string[] };
    assert.deepEqual(report.problems, problems);

    // A deleted queue would read as an empty one: validate (the pre-commit hook) refuses it.
    await rm(path.join(work, 'coordination/locks.json'));
    const gone = await bc('validate', work);
    assert.equal(gone.exitCode, 2);
    assert.ok(lines(gone.stderr).some((l) => l.startsWith('coordination/locks.json: /: missing: ')), gone.stderr);
    const elsewhere = await bc('validate', await tmpDir('not-a-checkout-'));
    assert.equal(elsewhere.exitCode, 2, 'a directory that is no coordination checkout is not "0 files valid"');
    assert.equal(lines(elsewhere.stderr).length, 4);
  });

  it('keeps a label whose key is also an Object.prototype member name', async () => {
    // canonical.ts drops such keys when it writes jobs.json (see canonical.test.ts).
    const id = json<{ id: string }>(await bc('job', 'add', '--label', 'constructor=yes', '--label', 'os=linux', '--json')).id;
    const job = json(await bc('job', 'show', id, '--json'));
    assert.deepEqual(job.labels, { constructor: 'yes', os: 'linux' });
  });
});

describe('a remote that refuses this host', () => {
  it('a push rejected by the server (a pre-receive hook) exits 4 with one line, and nothing changes', async () => {
    const home = await tmpDir('e2e-denied-');
    const repo = path.join(await tmpDir('e2e-denied-remote-'), 'coord.git');
    const env = { BUILDCOORD_HOME: home };
    assert.equal((await runCli(['init', '--repo', repo], { env })).exitCode, 0);
    const before = await git(repo, 'rev-parse', 'main');
    const hook = path.join(repo, 'hooks', 'pre-receive');
    await writeFile(hook, '#!/bin/sh\necho "this deploy key is read-only" >&2\nexit 1\n');
    await chmod(hook, 0o755);
    for (const args of [['job', 'add', '--type', 'make'], ['msg', 'send', '--to', 'all', '--type', 'info', '--subject', 'hi'], ['lock', 'acquire', 'deploy']]) {
      const r = await runCli([...args, '--repo', repo], { env });
      assert.equal(r.exitCode, 4, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, /refused the push/);
    }
    assert.equal(await git(repo, 'rev-parse', 'main'), before, 'nothing landed');
  });
});

describe('the embedded default repository', () => {
  it('is created under BUILDCOORD_HOME by the first command and then used', async () => {
    const home = await tmpDir('e2e-embedded-');
    const env = { BUILDCOORD_HOME: home, USER: 'tester' };
    assert.equal(existsSync(path.join(home, 'coordination.git')), false);

    const add = await runCli(['job', 'add', '--type', 'deb', '--json'], { env });
    const { id } = json<{ id: string }>(add);
    const embedded = path.join(home, 'coordination.git');
    assert.equal(await git(embedded, 'rev-parse', '--is-bare-repository'), 'true');
    assert.match(await git(embedded, 'rev-parse', 'main'), /^[0-9a-f]{40}$/);

    const list = json<Obj[]>(await runCli(['job', 'list', '--json'], { env }));
    assert.deepEqual(
      list.map((j) => j.id),
      [id],
    );
    const valid = await runCli(['validate'], { env });
    assert.equal(valid.exitCode, 0, valid.stderr);
  });
});

describe('the shipped pre-commit hook', () => {
  it('refuses a commit with an invalid coordination file and accepts a valid one', async () => {
    const bare = path.join(await tmpDir('e2e-hook-remote-'), 'coord.git');
    const home = await tmpDir('e2e-hook-home-');
    const init = await runCli(['init', '--repo', bare], { env: { BUILDCOORD_HOME: home, USER: 'tester' } });
    assert.equal(init.exitCode, 0, init.stderr);

    const work = await cloneWork(`file://${bare}`);
    await git(work, 'config', 'core.hooksPath', '.githooks');

    // `buildcoord` on PATH is the CLI built from this checkout.
    const bin = await tmpDir('e2e-bin-');
    const wrapper = path.join(bin, 'buildcoord');
    await writeFile(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${cliPath()}' "$@"\n`);
    await chmod(wrapper, 0o755);
    const base = await gitEnv();
    const env = { ...base, PATH: `${bin}${path.delimiter}${base.PATH ?? ''}`, BUILDCOORD_HOME: home };
    const commit = (message: string) => execa('git', ['commit', '-am', message], { cwd: work, env, extendEnv: false, reject: false, stdin: 'ignore' });

    const jobsPath = path.join(work, 'coordination/jobs.json');
    const original = await readFile(jobsPath, 'utf8');
    const head = await git(work, 'rev-parse', 'HEAD');

    await writeFile(jobsPath, original.replace('"version": 1', '"version": 2'));
    const refused = await commit('bump the version by hand');
    assert.notEqual(refused.exitCode, 0, `the hook refuses the commit: ${refused.stdout}`);
    assert.match(refused.stderr, /coordination\/jobs\.json: \/version: must be 1/);
    assert.equal(await git(work, 'rev-parse', 'HEAD'), head, 'no commit was made');

    await writeFile(path.join(work, 'build2/status.json'), '{ not json\n');
    await writeFile(jobsPath, original);
    const stillRefused = await commit('break a status file');
    assert.notEqual(stillRefused.exitCode, 0);
    assert.match(stillRefused.stderr, /build2\/status\.json: \/: invalid JSON/);
    await git(work, 'checkout', '--', 'build2/status.json');

    const configPath = path.join(work, 'shared/build_config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { defaults: { priority: number } };
    config.defaults.priority = config.defaults.priority === 3 ? 4 : 3;
    await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
    await writeFile(path.join(work, 'coordination/notes.txt'), 'not a coordination file\n');
    await git(work, 'add', 'coordination/notes.txt');
    const accepted = await commit('a valid hand edit');
    assert.equal(accepted.exitCode, 0, accepted.stderr);
    assert.notEqual(await git(work, 'rev-parse', 'HEAD'), head);
    assert.equal((await tryGit(work, 'status', '--porcelain')).stdout, '');
  });
});
