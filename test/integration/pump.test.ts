// `buildcoord pump restore` end to end, from the real distcc 3.4 source that
// scripts/get-distcc-source.sh fetches from Debian's archive (cached in
// /var/cache/buildcoord-test/distcc-src, or BUILDCOORD_TEST_DISTCC_SRC, so
// repeated runs do not fetch again), with the repository's patch, for
// /usr/bin/python3; then a real pump build with the restored include server
// against a distccd started here on 127.0.0.1, whose output must show no
// fallback to local preprocessing.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { existsSync, readlinkSync, realpathSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { analyzeClientLog } from '../../agent/builds/distcc.js';
import { executeJob } from '../../agent/builds/execute.js';
import { pumpCommand, pumpProbe, restorePump, startLoopbackDistccd, PumpRestoreError, RESTORE_STEPS, type LoopbackDistccd } from '../../agent/builds/pump.js';
import { runProcess } from '../../agent/builds/runner.js';
import type { Job } from '../../agent/model/types.js';
import { LocalLock } from '../../agent/store/locallock.js';
import { cleanupAll, isCI, makeBareRepo, onCleanup, repoRoot, requireTool, runCli, tmpDir } from '../helpers/git.js';
import { runningJob } from '../helpers/jobs.js';

after(cleanupAll);

const SOURCE_CACHE = process.env.BUILDCOORD_TEST_DISTCC_SRC || '/var/cache/buildcoord-test/distcc-src';
const BUILD_TOOLS = ['distcc', 'distccd', 'distcc-pump', 'gcc', 'make', 'autoconf', 'automake', 'aclocal', 'patch', 'tar', '/usr/bin/python3'];

function tools(t: TestContext, ...names: string[]): boolean {
  return names.every((n) => requireTool(n, t));
}

/** Python.h for /usr/bin/python3 (python3-dev): required like a tool. */
async function pythonHeaders(t: TestContext): Promise<boolean> {
  const r = await execa('/usr/bin/python3', ['-c', 'import sysconfig, os; print(os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'], { reject: false });
  if (r.stdout.trim() === 'True') return true;
  const why = 'Python.h for /usr/bin/python3 is missing (Debian package python3-dev)';
  if (isCI()) throw new Error(`${why}; CI=true, so a missing tool fails the test instead of skipping it`);
  t.skip(why);
  return false;
}

let sourcePromise: Promise<{ tarball: string | null; output: string }> | undefined;

/** The distcc 3.4 tarball, fetched once into the cache by the project's own script. */
async function distccSource(t: TestContext): Promise<string | null> {
  sourcePromise ??= (async () => {
    const r = await execa('bash', [path.join(repoRoot(), 'scripts', 'get-distcc-source.sh'), SOURCE_CACHE], { reject: false, timeout: 300_000 });
    const tarball = r.exitCode === 0 ? r.stdout.trim().split('\n').pop() ?? null : null;
    return { tarball: tarball && existsSync(tarball) ? tarball : null, output: `exit ${r.exitCode}\n${r.stdout}\n${r.stderr}` };
  })();
  const { tarball, output } = await sourcePromise;
  if (tarball) return tarball;
  const why = `scripts/get-distcc-source.sh ${SOURCE_CACHE} could not obtain the distcc source: ${output.trim()}`;
  if (isCI()) throw new Error(why);
  t.skip(why);
  return null;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** The distribution's pump files: they must never change. */
async function distributionFiles(): Promise<Map<string, string>> {
  const pump = (await execa('sh', ['-c', 'command -v distcc-pump'])).stdout.trim();
  const script = await readFile(pump, 'utf8');
  const isPath = /^include_server='?([^'\n]+)'?$/m.exec(script)?.[1];
  const files = [pump];
  if (isPath) {
    const dir = path.dirname(isPath);
    for (const f of await readdir(dir)) if (f.endsWith('.so') || f.endsWith('.py')) files.push(path.join(dir, f));
  }
  const out = new Map<string, string>();
  for (const f of files) out.set(f, await sha256(f));
  return out;
}

let daemon: Promise<LoopbackDistccd> | undefined;
function distccd(): Promise<LoopbackDistccd> {
  daemon ??= (async () => {
    const d = await startLoopbackDistccd({ logFile: path.join(await tmpDir('pump-distccd-'), 'distccd.log') });
    onCleanup(d.stop);
    return d;
  })();
  return daemon;
}

async function configFile(fields: Record<string, unknown>): Promise<string> {
  const dir = await tmpDir('pump-cfg-');
  const file = path.join(dir, 'agent.json');
  await writeFile(file, JSON.stringify({ builder: 'build1', artifacts_dir: path.join(dir, 'artifacts'), ...fields }, null, 2));
  return file;
}

describe('pump restore (real distcc 3.4 source, /usr/bin/python3)', () => {
  let home = '';
  let installed = '';
  let tarball = '';
  const before = new Map<string, string>();

  it('fails at "fetch source" when no source is configured, naming the step and the script that fetches one', async (t) => {
    if (!tools(t, 'distcc-pump')) return;
    home = await tmpDir('pump-home-');
    const cfg = await configFile({});
    const r = await runCli(['pump', 'restore', '--config', cfg], { env: { BUILDCOORD_HOME: home } });
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, /^buildcoord: pump restore failed at step "fetch source": no distcc source: set "distcc_source" .*scripts\/get-distcc-source\.sh/m);
    assert.match(r.stderr, /no managed install existed before/);
    assert.match(r.stderr, /\(log: .*\/pump\/restore-\d{8}T\d{6}Z\.log\)/);
    assert.equal(pumpCommand(home), null);
  });

  it('the stock include server falls back silently (what the restore fixes)', async (t) => {
    if (!tools(t, 'distcc', 'distccd', 'distcc-pump', 'gcc')) return;
    const d = await distccd();
    const work = await tmpDir('stock-probe-');
    const res = await pumpProbe({ pump: 'distcc-pump', hosts: `127.0.0.1:${d.port}/2,cpp,lzo`, workDir: work, logFile: path.join(work, 'probe.log'), runner: runProcess });
    t.diagnostic(`stock distcc-pump: ${res.ok ? 'serves' : 'falls back'}: ${res.reason}`);
    if (!res.ok) {
      // The compile still "succeeds": that is what makes it silent.
      assert.equal(res.exitCode, 0, res.reason);
      assert.ok(res.fallbacks > 0, res.reason);
      assert.match(await readFile(path.join(work, 'probe.log'), 'utf8'), /failed to get includes from include server, preprocessing locally/);
    }
  });

  it('rebuilds, installs under BUILDCOORD_HOME/pump, verifies a real pump compile and switches current', async (t) => {
    if (!tools(t, ...BUILD_TOOLS) || !(await pythonHeaders(t))) return;
    const src = await distccSource(t);
    if (!src) return;
    tarball = src;
    home ||= await tmpDir('pump-home-');
    for (const [k, v] of await distributionFiles()) before.set(k, v);
    const cfg = await configFile({ distcc_source: tarball });
    const started = Date.now();
    const r = await runCli(['pump', 'restore', '--config', cfg], { env: { BUILDCOORD_HOME: home }, timeoutMs: 280_000 });
    t.diagnostic(`pump restore took ${Date.now() - started} ms`);
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    for (const step of RESTORE_STEPS) assert.match(r.stderr, new RegExp(`^pump restore: ${step}: `, 'm'), `progress names ${step}`);
    const dirLine = /^restored: (\S+)$/m.exec(r.stdout);
    assert.ok(dirLine, r.stdout);
    installed = dirLine[1]!;
    assert.match(r.stdout, /0001-include-server-py-ssize-t-clean\.patch \(applied\)/);
    assert.match(r.stdout, /verified: the include server served a pump compile that ran remotely \(127\.0\.0\.1:\d+\/2\), no local preprocessing/);

    const root = path.join(home, 'pump');
    assert.equal(path.dirname(installed), root);
    assert.equal(readlinkSync(path.join(root, 'current')), path.basename(installed), 'current is a relative link to the new install');
    assert.equal(pumpCommand(home), path.join(installed, 'bin', 'distcc-pump'));
    const script = await readFile(path.join(installed, 'bin', 'distcc-pump'), 'utf8');
    assert.match(script, new RegExp(`^include_server='${installed}/include_server/include_server\\.py'$`, 'm'));
    assert.match(script, /^PYTHON='\/usr\/bin\/python3'$/m);
    assert.equal(realpathSync(path.join(installed, 'bin', 'distcc')), realpathSync((await execa('sh', ['-c', 'command -v distcc'])).stdout.trim()));
    const manifest = JSON.parse(await readFile(path.join(installed, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.python, '/usr/bin/python3');
    assert.equal(manifest.source, tarball);

    // The log of the run is kept, with every step.
    const logName = /^ {2}log: (\S+) /m.exec(r.stdout)![1]!;
    assert.match(path.basename(logName), /^restore-\d{8}T\d{6}Z\.log$/);
    const log = await readFile(logName, 'utf8');
    for (const step of RESTORE_STEPS) assert.match(log, new RegExp(`^\\[buildcoord\\] == ${step}: `, 'm'));
    assert.doesNotMatch(log, /failed to get includes from include server/);
    // No build directory is left behind; the distribution's files are as they were.
    assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('build-') || n.endsWith('.partial')), []);
    assert.deepEqual(await distributionFiles(), before);
  });

  it('a pump build with the restored include server runs in pump mode: every file remote, no fallback', async (t) => {
    if (!installed) return t.skip('needs the restore above');
    const d = await distccd();
    const pump = pumpCommand(home)!;
    const proj = await tmpDir('pump-build-');
    await cp(path.join(repoRoot(), 'test', 'fixtures', 'doctor', 'pump-hello'), proj, { recursive: true });
    const clientLog = path.join(proj, 'distcc-client.log');
    const out = path.join(proj, 'build.log');
    await mkdir(path.join(proj, '.distcc'));
    const r = await runProcess({
      command: pump,
      args: ['make', '-j2', 'CC=distcc gcc'],
      cwd: proj,
      env: { ...process.env, DISTCC_HOSTS: `127.0.0.1:${d.port}/2,cpp,lzo`, DISTCC_VERBOSE: '1', DISTCC_LOG: clientLog, DISTCC_DIR: path.join(proj, '.distcc'), DISTCC_BACKOFF_PERIOD: '0' },
      logFile: out,
      timeoutMs: 120_000,
    });
    const output = await readFile(out, 'utf8');
    assert.equal(r.exitCode, 0, output);
    assert.match(output, new RegExp(`^__________Using distcc-pump from ${installed}/bin$`, 'm'));
    assert.match(output, /^__________Using 1 distcc server in pump mode$/m);
    assert.doesNotMatch(output, /preprocessing locally|include server failed|Include server internal error/i);
    const stats = analyzeClientLog(await readFile(clientLog, 'utf8'));
    assert.equal(stats.remote, 3, 'alpha.c, beta.c and main.c compiled remotely');
    assert.equal(stats.pumpFallbacks, 0);
    assert.equal(stats.localCpp, 0, 'nothing preprocessed locally');
    for (const o of ['alpha.o', 'beta.o', 'main.o']) assert.ok(existsSync(path.join(proj, o)), o);
  });

  it('a patch that does not apply fails at "patch" and leaves the previous install in use', async (t) => {
    if (!installed) return t.skip('needs the restore above');
    const patches = await tmpDir('bad-patches-');
    await writeFile(
      path.join(patches, '0001-nonsense.patch'),
      '--- a/include_server/include_server.py\n+++ b/include_server/include_server.py\n@@ -1,1 +1,1 @@\n-this line is not in the file\n+nor is this one\n',
    );
    const cfg = await configFile({ distcc_source: tarball, distcc_patches: patches });
    const r = await runCli(['pump', 'restore', '--config', cfg], { env: { BUILDCOORD_HOME: home } });
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /pump restore failed at step "patch": 0001-nonsense\.patch does not apply to this source/);
    assert.match(r.stderr, new RegExp(`the previous install ${installed} stays in use`));
    assert.equal(pumpCommand(home), path.join(installed, 'bin', 'distcc-pump'));
  });

  it('without the patch the rebuilt extension fails verification: "verify" is named, nothing is switched, the job log gets the restore log', async (t) => {
    if (!installed) return t.skip('needs the restore above');
    const jobLog = path.join(await tmpDir('job-log-'), 'build.log');
    const empty = await tmpDir('no-patches-');
    await assert.rejects(
      restorePump({ home, source: tarball, patchesDir: empty, alsoLog: jobLog }),
      (e: unknown) => {
        assert.ok(e instanceof PumpRestoreError, String(e));
        assert.equal(e.step, 'verify');
        assert.match(e.message, /SystemError: PY_SSIZE_T_CLEAN macro must be defined for '#' formats/);
        assert.equal(e.current, installed);
        return true;
      },
    );
    assert.equal(pumpCommand(home), path.join(installed, 'bin', 'distcc-pump'), 'current still points at the working install');
    const installs = (await readdir(path.join(home, 'pump'))).filter((n) => /^\d{8}T\d{6}Z/.test(n));
    assert.deepEqual(installs, [path.basename(installed)], 'the unverified install was removed');
    const log = await readFile(jobLog, 'utf8');
    assert.match(log, /no \*\.patch in /);
    assert.match(log, /FAILED at step "verify"/);
  });

  it('doctor passes (exit 0) with the restored include server', async (t) => {
    if (!installed) return t.skip('needs the restore above');
    if (!tools(t, 'git', 'mvn', 'java', 'dpkg-buildpackage')) return;
    const d = await distccd();
    const { url } = await makeBareRepo();
    assert.equal((await runCli(['init', '--repo', url], { env: { BUILDCOORD_HOME: home } })).exitCode, 0);
    const cfg = await configFile({ repo: url, distcc_hosts: `127.0.0.1:${d.port}/2,cpp,lzo` });
    const r = await runCli(['doctor', '--config', cfg], { env: { BUILDCOORD_HOME: home } });
    assert.equal(r.exitCode, 0, r.stdout);
    assert.match(r.stdout, new RegExp(`^pump include server\\s+ok\\s+buildcoord's restored include server \\(${installed}\\): the include server served a pump compile`, 'm'));
    assert.match(r.stdout, /^ready: \d+ ok, 0 warning\(s\), 0 failed, 0 skipped$/m);

    const status = await runCli(['pump', 'status', '--json', '--config', cfg], { env: { BUILDCOORD_HOME: home } });
    assert.equal(status.exitCode, 0, status.stderr);
    const cur = (JSON.parse(status.stdout) as { current: { dir: string; pump: string; manifest: { python_version: string } } }).current;
    assert.equal(cur.dir, installed);
    assert.match(cur.manifest.python_version, /^3\.\d+\.\d+$/);
  });

  it('get-distcc-source.sh is idempotent: a second run prints the same tarball without fetching', async (t) => {
    if (!tarball) return t.skip('needs the source above');
    const started = Date.now();
    const r = await execa('bash', [path.join(repoRoot(), 'scripts', 'get-distcc-source.sh'), SOURCE_CACHE]);
    assert.equal(r.stdout.trim(), tarball);
    assert.match(r.stderr, /already here: /);
    assert.ok(Date.now() - started < 10_000);
  });
});

describe('pump-restore jobs', () => {
  const TOKEN = 'pump-job-token-value';
  const CONFIGURED = 'pump-job-configured-secret';

  const pumpJob = (): Job => runningJob(`job_pump${Date.now()}`, { type: 'pump-restore' });

  it('mask an env token, a configured secret and URL credentials that a restore step prints, in the job log and the restore log', async (t) => {
    if (!tools(t, 'make', 'gcc', '/usr/bin/python3') || !(await pythonHeaders(t))) return;
    // Not distcc, just enough of its shape to reach "configure" in well under a
    // second; the configure script prints what a careless one might.
    const tree = await tmpDir('fake-distcc-src-');
    await mkdir(path.join(tree, 'include_server'));
    await writeFile(path.join(tree, 'include_server', 'setup.py'), '# not a real include server\n');
    await writeFile(
      path.join(tree, 'configure'),
      `#!/bin/sh\necho "token is $MY_API_TOKEN"\necho "configured: ${CONFIGURED}" >&2\necho "cloning https://alice:p@ss@git.example.invalid/x.git"\nexit 1\n`,
      { mode: 0o755 },
    );
    const job = pumpJob();
    const res = await executeJob(job, new AbortController().signal, {
      runner: runProcess,
      workDir: await tmpDir('pump-job-work-'),
      config: { builder: 'build1', distcc_source: tree, distcc_patches: await tmpDir('no-patches-'), redact: [CONFIGURED] },
      defaultSource: null,
      graceMs: 2000,
      env: { ...process.env, MY_API_TOKEN: TOKEN },
      home: await tmpDir('pump-job-home-'),
    });
    assert.equal(res.status, 'failed', res.summary);
    assert.match(res.summary, /^pump restore failed at step "configure": sh \.\/configure .* exited with 1/);
    const log = await readFile(res.logFile, 'utf8');
    assert.match(log, /^token is \*\*\*$/m, 'the restore log was copied in, masked');
    assert.match(log, /^configured: \*\*\*$/m);
    assert.match(log, /^cloning https:\/\/\*\*\*@git\.example\.invalid\/x\.git$/m);
    const restoreLog = await readFile(res.details!.restore_log as string, 'utf8');
    assert.match(restoreLog, /^token is \*\*\*$/m, 'the restore step ran with the job\'s redactor');
    for (const s of [TOKEN, CONFIGURED, 'p@ss']) {
      assert.ok(!log.includes(s), `${s} is not in the job log`);
      assert.ok(!restoreLog.includes(s), `${s} is not in the restore log`);
      assert.ok(!JSON.stringify(res).includes(s), `${s} is not in the result`);
    }
    // The failed restore's manifest: no source or commit of its own, the processes it ran, where it stopped.
    const m = res.manifest as Record<string, unknown> & { steps: Array<{ name: string; args: string[]; exit_code: number | null }> };
    assert.ok(m, 'a manifest');
    assert.deepEqual([m.job, m.attempt, m.builder, m.type, m.source, m.branch, m.commit, m.status], [job.id, 1, 'build1', 'pump-restore', null, 'main', null, 'failed']);
    assert.deepEqual(m.artifacts, []);
    assert.ok(typeof m.started_at === 'string' && typeof m.finished_at === 'string');
    const last = m.steps[m.steps.length - 1]!;
    assert.deepEqual([last.name, last.args[0], last.exit_code], ['sh', './configure', 1]);
    assert.deepEqual(m.pump_restore, { step: 'configure', restore_log: res.details!.restore_log });
  });

  it('another restore holding the lock fails the job with its reason and a manifest, not an internal error', async () => {
    const home = await tmpDir('pump-job-home-');
    const workDir = await tmpDir('pump-job-work-');
    const job = pumpJob();
    const res = await new LocalLock(path.join(home, 'pump', '.restore'), { waitMs: 0 }).with(() =>
      executeJob(job, new AbortController().signal, {
        runner: runProcess,
        workDir,
        config: { builder: 'build1', distcc_source: workDir },
        defaultSource: null,
        graceMs: 2000,
        env: process.env,
        home,
      }),
    );
    assert.equal(res.status, 'failed');
    assert.match(res.summary, /^another pump restore is running on this host/);
    assert.match(await readFile(res.logFile, 'utf8'), /another pump restore is running on this host/);
    assert.deepEqual([res.manifest?.type, res.manifest?.status, res.manifest?.steps], ['pump-restore', 'failed', []]);
  });
});
