// The process runner (agent/builds/runner.ts) with real processes: tiny
// fixture shell scripts, never a mocked child_process. What matters is what
// the kernel sees afterwards: exit codes, the bytes in the log file, and
// whether every process of a stopped build is really gone.

import assert from 'node:assert/strict';
import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeRedactor, runProcess, type RunSpec } from '../../agent/builds/runner.js';
import { cleanupAll, onCleanup, repoRoot, tmpDir, isGone, sleep, waitGone } from '../helpers/git.js';

after(cleanupAll);

const fixture = (name: string) => join(repoRoot(), 'test', 'fixtures', 'agent', name);

let dir = '';
let n = 0;
before(async () => {
  dir = await tmpDir('runner-');
  // tsc does not copy the scripts; a checkout may have lost their mode bits.
  for (const f of ['spawn-tree.sh', 'exit-with.sh', 'sleep-job.sh']) await chmod(fixture(f), 0o755);
});

function spec(over: Partial<RunSpec> = {}): RunSpec {
  n += 1;
  return { command: 'sh', args: ['-c', 'true'], cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, logFile: join(dir, `run-${n}.log`), graceMs: 2000, ...over };
}

/** The promise's value, or a failure after ms: a regression fails the test instead of hanging the run. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}


/** Waits for the spawn-tree fixture's PID file: its own PID and three children. */
async function treePids(file: string, ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const pids = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map(Number);
      if (pids.length === 4) {
        // Whatever happens to the test, the tree does not outlive it.
        onCleanup(() => {
          for (const p of pids) if (!isGone(p)) process.kill(p, 'SIGKILL');
        });
        return pids;
      }
    } catch {
      /* not written yet */
    }
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${ms} ms`);
    await sleep(20);
  }
}

describe('runProcess: exit codes and the log file', () => {
  it('reports success and writes stdout and stderr, line by line, to the log', async () => {
    const s = spec({ command: fixture('exit-with.sh'), args: ['0', 'first line', 'second line'] });
    const r = await runProcess(s);
    assert.equal(r.exitCode, 0);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
    assert.equal(r.aborted, false);
    assert.match(r.summary, /^succeeded in \d+(\.\d)? s$/);
    const log = await readFile(s.logFile, 'utf8');
    const lines = log.split('\n');
    assert.ok(lines.includes('first line') && lines.includes('second line') && lines.includes('to stderr'), log);
    assert.ok(lines.indexOf('first line') < lines.indexOf('second line'), 'order kept');
  });

  it('keeps an unterminated last line, terminated', async () => {
    const s = spec({ args: ['-c', 'echo one; printf "no trailing newline"'] });
    await runProcess(s);
    assert.equal(await readFile(s.logFile, 'utf8'), 'one\nno trailing newline\n');
  });

  it('reports a non-zero exit code', async () => {
    const s = spec({ command: fixture('exit-with.sh'), args: ['3', 'bad things'] });
    const r = await runProcess(s);
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
    assert.match(r.summary, /^exited with 3 after \d+(\.\d)? s$/);
    assert.match(await readFile(s.logFile, 'utf8'), /^bad things$/m);
  });

  it('reports a process killed by a signal it did not get from us', async () => {
    const r = await runProcess(spec({ args: ['-c', 'kill -KILL $$'] }));
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.aborted, false);
    assert.match(r.summary, /^killed by SIGKILL after/);
  });

  it('appends to an existing log rather than replacing it', async () => {
    const logFile = join(dir, 'appended.log');
    await runProcess(spec({ logFile, args: ['-c', 'echo one'] }));
    await runProcess(spec({ logFile, args: ['-c', 'echo two'] }));
    assert.equal(await readFile(logFile, 'utf8'), 'one\ntwo\n');
  });

  it('says so when the command cannot be started, with no exit code', async () => {
    const s = spec({ command: join(dir, 'no-such-program'), args: [] });
    const r = await runProcess(s);
    assert.equal(r.exitCode, null);
    assert.match(r.summary, /^could not start .*no-such-program/);
  });

  it('passes only the environment it is given', async () => {
    const s = spec({ args: ['-c', 'echo "A=$A B=${BC_RUNNER_UNSET-unset}"'], env: { PATH: process.env.PATH, A: 'given' } });
    process.env.BC_RUNNER_UNSET = 'leaked';
    try {
      await runProcess(s);
    } finally {
      delete process.env.BC_RUNNER_UNSET;
    }
    assert.equal(await readFile(s.logFile, 'utf8'), 'A=given B=unset\n');
  });

  it('runs in the given working directory', async () => {
    const s = spec({ args: ['-c', 'pwd'] });
    await runProcess(s);
    assert.equal((await readFile(s.logFile, 'utf8')).trim(), dir);
  });

  it('takes down what a finished build left running in its process group', async () => {
    // The background sleep keeps the output pipe open: without the group kill at
    // the leader's exit the run would not end for 300 s.
    const pidsFile = join(dir, 'leftover.pids');
    const s = spec({ args: ['-c', `sleep 300 & echo $! > ${pidsFile}.tmp; mv ${pidsFile}.tmp ${pidsFile}; echo started`] });
    const running = runProcess(s);
    const deadline = Date.now() + 5000;
    while (!(await stat(pidsFile).catch(() => null)) && Date.now() < deadline) await sleep(20);
    const pid = Number((await readFile(pidsFile, 'utf8')).trim());
    onCleanup(() => void (isGone(pid) || process.kill(pid, 'SIGKILL')));
    const r = await within(running, 5000, 'a build whose leader exited');
    assert.equal(r.exitCode, 0);
    assert.deepEqual(await waitGone([pid]), [], 'the background sleep went with its build');
  });
});

describe('runProcess: stopping a process tree', { timeout: 60_000 }, () => {
  it('a timeout kills the whole tree the fixture spawned', async () => {
    const pidsFile = join(dir, 'timeout-tree.pids');
    const s = spec({ command: fixture('spawn-tree.sh'), args: [], env: { PATH: process.env.PATH, BC_TREE_PIDS: pidsFile }, timeoutMs: 1000 });
    const started = Date.now();
    const running = runProcess(s);
    const pids = await treePids(pidsFile);
    assert.ok(pids.every((p) => !isGone(p)), 'the tree is up');
    const r = await within(running, 10_000, 'a timed-out tree');
    assert.equal(r.timedOut, true);
    assert.equal(r.aborted, false);
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
    assert.match(r.summary, /^timed out after 1 s$/);
    assert.ok(Date.now() - started < 5000, `stopped promptly (${Date.now() - started} ms)`);
    assert.deepEqual(await waitGone(pids), [], 'the leader and all three children are gone');
    assert.match(await readFile(s.logFile, 'utf8'), /^spawned \d+ \d+ \d+$/m, 'output before the stop is in the log');
  });

  it('an AbortSignal kills the whole tree', async () => {
    const pidsFile = join(dir, 'abort-tree.pids');
    const abort = new AbortController();
    const running = runProcess(spec({ command: fixture('spawn-tree.sh'), args: [], env: { PATH: process.env.PATH, BC_TREE_PIDS: pidsFile }, signal: abort.signal }));
    const pids = await treePids(pidsFile);
    abort.abort();
    const r = await within(running, 10_000, 'an aborted tree');
    assert.equal(r.aborted, true);
    assert.equal(r.timedOut, false);
    assert.equal(r.exitCode, null);
    assert.match(r.summary, /^stopped after \d+(\.\d)? s$/);
    assert.deepEqual(await waitGone(pids), [], 'the leader and all three children are gone');
  });

  it('a signal aborted before the start stops the process at once', async () => {
    const abort = new AbortController();
    abort.abort();
    const started = Date.now();
    const r = await within(runProcess(spec({ args: ['-c', 'sleep 30'], signal: abort.signal })), 10_000, 'a run aborted before its start');
    assert.equal(r.aborted, true);
    assert.equal(r.exitCode, null);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  it('SIGKILLs after the grace period a build that ignores SIGTERM', async () => {
    const ready = join(dir, 'stubborn.ready');
    const abort = new AbortController();
    const s = spec({ args: ['-c', `trap 'echo ignoring TERM' TERM; touch ${ready}; while :; do sleep 0.05; done`], signal: abort.signal, graceMs: 400 });
    const running = runProcess(s);
    const deadline = Date.now() + 5000;
    while (!(await stat(ready).catch(() => null)) && Date.now() < deadline) await sleep(20);
    const stopAt = Date.now();
    abort.abort();
    const r = await within(running, 10_000, 'a build ignoring SIGTERM');
    const took = Date.now() - stopAt;
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.aborted, true);
    assert.ok(took >= 350 && took < 4000, `SIGKILL came after the grace, took ${took} ms`);
    assert.match(await readFile(s.logFile, 'utf8'), /ignoring TERM/);
  });
});

describe('makeRedactor', () => {
  const env = {
    GITHUB_TOKEN: 'ghp_0123456789abcdef',
    DB_PASSWORD: 'hunter2hunter2',
    app_secret: 'sauce-of-the-day',
    AWS_SECRET_ACCESS_KEY: 'AKIAwhatever/xyz',
    SSH_KEY: 'key-material-1234',
    REGISTRY_CREDENTIAL: 'cred-5678',
    SHORT_TOKEN: 'abc',
    EMPTY_PASSWORD: '',
    HOME: '/home/builder',
    USER: 'builder',
  };
  const redact = makeRedactor(env, ['extra-secret-value', 'xy']);

  it('replaces values of env vars named like secrets, anywhere in a line', () => {
    assert.equal(redact('token=ghp_0123456789abcdef end'), 'token=*** end');
    assert.equal(redact('pw hunter2hunter2, again hunter2hunter2'), 'pw ***, again ***');
    assert.equal(redact('sauce-of-the-day'), '***', 'the name matches case-insensitively');
    assert.equal(redact('aws AKIAwhatever/xyz'), 'aws ***');
    assert.equal(redact('ssh key-material-1234'), 'ssh ***');
    assert.equal(redact('cred-5678'), '***');
  });

  it('replaces configured extra strings, and leaves alone ordinary env values and very short values', () => {
    assert.equal(redact('extra-secret-value!'), '***!');
    assert.equal(redact('HOME is /home/builder for builder'), 'HOME is /home/builder for builder');
    assert.equal(redact('abc and xy stay'), 'abc and xy stay', 'values under 4 characters would garble every line');
  });

  it('replaces user:password@ and user@ in URLs', () => {
    assert.equal(redact('cloning https://alice:s3cret@git.example.org/x.git'), 'cloning https://***@git.example.org/x.git');
    assert.equal(redact('ssh://deploy@host:22/repo and git://u:p@h/r'), 'ssh://***@host:22/repo and git://***@h/r');
    assert.equal(redact('https://git.example.org/x.git'), 'https://git.example.org/x.git', 'no credentials, nothing changed');
    assert.equal(redact('mail me at someone@example.org'), 'mail me at someone@example.org', 'not a URL');
  });

  it('masks the whole userinfo up to the last "@" before the host, a password with "@" in it included', () => {
    assert.equal(redact('https://alice:p@ss@host/x.git'), 'https://***@host/x.git');
    assert.equal(redact('fetch https://alice:p@ss@w0rd@git.example.org:8443/x.git failed'), 'fetch https://***@git.example.org:8443/x.git failed');
    assert.equal(redact('https://:only-a-password@host/x'), 'https://***@host/x', 'an empty user name still hides the password');
    assert.equal(redact('https://host.example.org'), 'https://host.example.org', 'no credentials and no path: nothing changed');
    assert.equal(redact('see https://host.example.org/a@b/c'), 'see https://host.example.org/a@b/c', 'an "@" in the path is not userinfo');
  });

  it('masks the credentials of every URL on a line, each up to its own host', () => {
    assert.equal(
      redact('from https://alice:p@ss@one.example/a.git to ssh://bob:x@y@two.example:22/b.git'),
      'from https://***@one.example/a.git to ssh://***@two.example:22/b.git',
    );
    assert.equal(redact('https://one.example/a.git https://u:p@w@two.example/b'), 'https://one.example/a.git https://***@two.example/b', 'the first URL, without credentials, stays as it was');
  });

  it('prefers the longer secret when one contains another', () => {
    const r = makeRedactor({ A_TOKEN: 'abcd', B_TOKEN: 'abcdefgh' });
    assert.equal(r('abcdefgh abcd'), '*** ***');
  });

  it('runProcess passes every line of output through it, even a secret split across writes', async () => {
    const s = spec({
      args: ['-c', 'printf "tok=ghp_0123"; sleep 0.2; printf "456789abcdef\\n"; echo "url https://bob:pw@example.org/r"; echo "pw=$DB_PASSWORD" >&2'],
      env: { PATH: process.env.PATH, DB_PASSWORD: env.DB_PASSWORD },
      redact,
    });
    const r = await runProcess(s);
    assert.equal(r.exitCode, 0);
    const log = await readFile(s.logFile, 'utf8');
    assert.ok(!log.includes('ghp_0123456789abcdef') && !log.includes('hunter2') && !log.includes('bob:pw'), log);
    assert.match(log, /^tok=\*\*\*$/m);
    assert.match(log, /^url https:\/\/\*\*\*@example\.org\/r$/m);
    assert.match(log, /^pw=\*\*\*$/m);
  });
});
