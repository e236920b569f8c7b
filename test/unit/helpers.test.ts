// The test helpers are what every integration test stands on, so they get
// tests of their own: real git, a real git daemon on loopback, real PIDs.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';

import {
  cleanupAll,
  cliPath,
  cloneWork,
  git,
  makeBareRepo,
  pushFiles,
  readRepoFile,
  repoRoot,
  requireTool,
  seedRepo,
  startGitDaemon,
  tmpDir,
  tryGit,
} from '../helpers/git.js';

after(cleanupAll);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

test('makeBareRepo + seedRepo: the seeded commit is main in the bare repo and in a new clone', async () => {
  const bare = await makeBareRepo();
  assert.equal(bare.url, `file://${bare.dir}`);
  assert.equal(await git(bare.dir, 'rev-parse', '--is-bare-repository'), 'true');

  const sha = await seedRepo(bare.url, { 'coordination/jobs.json': '{"jobs": []}\n', 'README': 'hi\n' }, 'seed it');
  assert.match(sha, /^[0-9a-f]{40}$/);
  assert.equal(await git(bare.dir, 'rev-parse', 'refs/heads/main'), sha);
  assert.equal(await git(bare.dir, 'log', '-1', '--format=%s <%ae>'), 'seed it <test@buildcoord.invalid>');

  const work = await cloneWork(bare.url);
  assert.equal(await git(work, 'rev-parse', 'HEAD'), sha);
  assert.equal(await git(work, 'rev-parse', '--abbrev-ref', 'HEAD'), 'main');
  assert.equal(await readRepoFile(work, 'coordination/jobs.json'), '{"jobs": []}\n');

  const second = await pushFiles(work, { README: null, 'shared/x.json': '{}\n' }, 'second');
  assert.equal(await git(bare.dir, 'rev-parse', 'main'), second);
  assert.equal(await git(bare.dir, 'ls-tree', '-r', '--name-only', 'main'), 'coordination/jobs.json\nshared/x.json');
});

test('git() throws with git stderr in the message', async () => {
  const dir = await tmpDir('not-a-repo-');
  await assert.rejects(git(dir, 'rev-parse', 'HEAD'), /git rev-parse HEAD .* exited 128: fatal: not a git repository/);
});

test('startGitDaemon serves a clone and accepts a push over git://127.0.0.1', async () => {
  const base = await tmpDir('served-');
  const bare = await makeBareRepo({ parent: base, name: 'coord.git' });
  const seeded = await seedRepo(bare.url, { 'a.txt': 'one\n' });

  const daemon = await startGitDaemon(base);
  const url = daemon.url('coord.git');
  assert.equal(url, `git://127.0.0.1:${daemon.port}/coord.git`);
  assert.equal(await git(base, 'ls-remote', url, 'refs/heads/main'), `${seeded}\trefs/heads/main`);

  const work = await cloneWork(url);
  assert.equal(await readRepoFile(work, 'a.txt'), 'one\n');
  const pushed = await pushFiles(work, { 'a.txt': 'two\n' }, 'over git://');
  assert.equal(await git(bare.dir, 'rev-parse', 'main'), pushed);

  await daemon.stop();
  await daemon.stop(); // a second stop is a no-op
  assert.equal(pidAlive(daemon.pid), false);
});

test('a non-fast-forward push over git:// is rejected and detectable', async () => {
  const base = await tmpDir('race-');
  const bare = await makeBareRepo({ parent: base, name: 'coord.git' });
  await seedRepo(bare.url, { 'coordination/jobs.json': '[]\n' });
  const daemon = await startGitDaemon(base);
  const url = daemon.url('coord.git');

  const alice = await cloneWork(url);
  const bob = await cloneWork(url);
  const winner = await pushFiles(alice, { 'coordination/jobs.json': '["alice"]\n' }, 'alice claims');

  await git(bob, 'commit', '--quiet', '--allow-empty', '-m', 'bob claims');
  const push = await tryGit(bob, 'push', '--porcelain', 'origin', 'HEAD:refs/heads/main');
  assert.notEqual(push.exitCode, 0);
  assert.match(push.stdout, /^!\tHEAD:refs\/heads\/main\t\[rejected\]/m);
  assert.equal(await git(bare.dir, 'rev-parse', 'main'), winner, 'the rejected push changed nothing');
});

test('pushFiles throws when its push is rejected', async () => {
  const bare = await makeBareRepo();
  await seedRepo(bare.url, { 'f': '0\n' });
  const a = await cloneWork(bare.url);
  const b = await cloneWork(bare.url);
  await pushFiles(a, { f: 'a\n' });
  await assert.rejects(pushFiles(b, { f: 'b\n' }), /git push .* exited 1: .*\[rejected\]/s);
});

test('cleanupAll stops the daemon (its PID is gone) and removes the temp dirs', async () => {
  const base = await tmpDir('cleanup-');
  await makeBareRepo({ parent: base, name: 'r.git' });
  const daemon = await startGitDaemon(base);
  assert.equal(pidAlive(daemon.pid), true);
  assert.equal(Number((await readFile(daemon.pidFile, 'utf8')).trim()), daemon.pid);

  await cleanupAll();

  assert.equal(pidAlive(daemon.pid), false);
  assert.equal(existsSync(base), false);
  assert.equal(existsSync(path.dirname(daemon.pidFile)), false);
  // Helpers still work after a cleanup: the private HOME is made again.
  const bare = await makeBareRepo();
  assert.match(await seedRepo(bare.url, { x: 'x\n' }), /^[0-9a-f]{40}$/);
});

test('requireTool: present, skipped when missing, a failure under CI', () => {
  const skips: string[] = [];
  const fake = { skip: (why?: string) => void skips.push(why ?? '') } as unknown as TestContext;
  const savedCI = process.env.CI;
  try {
    delete process.env.CI;
    assert.equal(requireTool('git', fake), true);
    assert.equal(requireTool('buildcoord-no-such-tool', fake), false);
    assert.match(skips[0] ?? '', /buildcoord-no-such-tool is not on PATH/);

    process.env.CI = 'true';
    assert.throws(() => requireTool('buildcoord-no-such-tool', fake), /not on PATH.*CI=true/);
    assert.equal(skips.length, 1);
  } finally {
    if (savedCI === undefined) delete process.env.CI;
    else process.env.CI = savedCI;
  }
});

test('repoRoot and cliPath point into this project', () => {
  assert.equal(existsSync(path.join(repoRoot(), 'package.json')), true);
  assert.equal(cliPath(), path.join(repoRoot(), 'dist', 'agent', 'cli', 'main.js'));
});
