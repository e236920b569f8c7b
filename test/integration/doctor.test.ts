// `buildcoord doctor` and the distcc-smoketest job's runSmoketest, against
// real things: a bare coordination repository, and two distccd on 127.0.0.1
// standing for two workers, one of them with a compiler that identifies
// itself as a different version (test/fixtures/doctor/fake-gcc.sh first on
// its PATH). Daemons are started here and stopped by PID.

import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readObjectInfo, runSmoketest, compilerIdent } from '../../agent/builds/smoketest.js';
import { startLoopbackDistccd, type LoopbackDistccd } from '../../agent/builds/pump.js';
import { runProcess } from '../../agent/builds/runner.js';
import { Store } from '../../agent/store/store.js';
import { cleanupAll, makeBareRepo, onCleanup, repoRoot, requireTool, runCli, tmpDir, type CliResult, freePort } from '../helpers/git.js';

after(cleanupAll);

type Row = { id: string; check: string; status: string; detail: string; fix?: string; data?: Record<string, unknown> };
type Report = { ok: boolean; checks: Row[]; counts: Record<string, number> };

const ALL_TOOLS = ['git', 'mvn', 'java', 'dpkg-buildpackage', 'gcc', 'distcc', 'distcc-pump'];

function tools(t: TestContext, ...names: string[]): boolean {
  return names.every((n) => requireTool(n, t));
}

function report(r: CliResult): Report {
  try {
    return JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`doctor --json printed no JSON (exit ${r.exitCode}): ${r.stdout}\n${r.stderr}`);
  }
}

function row(rep: Report, id: string): Row {
  const found = rep.checks.find((c) => c.id === id);
  assert.ok(found, `row ${id} in ${rep.checks.map((c) => c.id).join(', ')}`);
  return found;
}

// ---------------------------------------------------------------- two distcc "workers"

let daemons: Promise<{ good: LoopbackDistccd; fake: LoopbackDistccd; triplet: string }> | undefined;

function startDaemons() {
  daemons ??= (async () => {
    const triplet = (await execa('gcc', ['-dumpmachine'])).stdout.trim();
    // distccd runs the compiler by name from its PATH: put the fake first. Debian's
    // client rewrites "gcc" to "<triplet>-gcc" and Debian's distccd only runs names
    // listed in /usr/lib/distcc (both are there for the system compiler).
    const fakeDir = await tmpDir('fake-cc-');
    await chmod(fakeDir, 0o755); // distccd drops to its own user when started as root
    for (const name of ['gcc', `${triplet}-gcc`]) {
      await copyFile(path.join(repoRoot(), 'test', 'fixtures', 'doctor', 'fake-gcc.sh'), path.join(fakeDir, name));
      await chmod(path.join(fakeDir, name), 0o755);
    }
    const logs = await tmpDir('distccd-logs-');
    const good = await startLoopbackDistccd({ logFile: path.join(logs, 'good.log') });
    onCleanup(good.stop);
    const fake = await startLoopbackDistccd({ logFile: path.join(logs, 'fake.log'), env: { ...process.env, PATH: `${fakeDir}:${process.env.PATH}` } });
    onCleanup(fake.stop);
    return { good, fake, triplet };
  })();
  return daemons;
}

// ---------------------------------------------------------------- coordination repository

let shared: Promise<string> | undefined;

/** One initialized coordination repository for the whole file (doctor never writes to it). */
function coordRepo(): Promise<string> {
  shared ??= (async () => {
    const { url } = await makeBareRepo();
    const r = await runCli(['init', '--repo', url]);
    assert.equal(r.exitCode, 0, r.stderr);
    return url;
  })();
  return shared;
}

async function configFile(fields: Record<string, unknown>): Promise<string> {
  const dir = await tmpDir('doctor-cfg-');
  const file = path.join(dir, 'agent.json');
  await writeFile(file, JSON.stringify({ builder: 'build1', artifacts_dir: path.join(dir, 'artifacts'), ...fields }, null, 2));
  return file;
}

// ---------------------------------------------------------------- tests

describe('distcc smoke test (runSmoketest)', () => {
  it('proves from distcc’s own log where each compile ran, passes the real compiler and names the fake one', async (t) => {
    if (!tools(t, 'gcc', 'distcc', 'distccd', 'objcopy')) return;
    const { good, fake } = await startDaemons();
    const dead = await freePort();
    const work = await tmpDir('smoke-');
    const log = path.join(work, 'job.log');
    const hosts = `localhost/2 127.0.0.1:${good.port}/2,lzo 127.0.0.1:${fake.port}/2 127.0.0.1:${dead}/2`;
    const res = await runSmoketest(hosts, path.join(work, 'work'), log, runProcess);

    assert.equal(res.ok, false);
    assert.match(res.local.compiler_version ?? '', /^GCC: /, 'the local compiler identified from its object');
    assert.deepEqual(res.skipped.map((s) => s.host), ['localhost/2']);
    assert.deepEqual(res.hosts.map((h) => [h.host, h.ok]), [
      [`127.0.0.1:${good.port}/2,lzo`, true],
      [`127.0.0.1:${fake.port}/2`, false],
      [`127.0.0.1:${dead}/2`, false],
    ]);
    const [g, f, d] = res.hosts;
    assert.equal(g!.compiler_version, res.local.compiler_version);
    assert.equal(g!.target, res.local.target);
    assert.match(g!.reason, new RegExp(`compile probe\\.c on 127\\.0\\.0\\.1:${good.port}/2,lzo completed ok`));
    assert.equal(f!.compiler_version, 'GCC: (Fake) 99.0-fake', 'the fake host is named with its compiler');
    assert.match(f!.reason, /ran on 127\.0\.0\.1:\d+, but its compiler is "GCC: \(Fake\) 99\.0-fake", this builder's is "GCC: /);
    assert.equal(d!.compiler_version, null);
    assert.match(d!.reason, /does not answer \(ECONNREFUSED\)/);
    assert.match(res.summary, /2 of 3 distcc host\(s\) failed/);

    // The job log holds distcc's verbose output (the proof) and one line per host.
    const text = await readFile(log, 'utf8');
    assert.match(text, new RegExp(`exec on 127\\.0\\.0\\.1:${good.port}/2,lzo`));
    assert.match(text, new RegExp(`\\[buildcoord\\] 127\\.0\\.0\\.1:${fake.port}/2: FAIL: GCC: \\(Fake\\) 99\\.0-fake`));
    // And the servers agree: each compiled exactly one file.
    assert.equal((good.log().match(/COMPILE_OK/g) ?? []).length >= 1, true, good.log());
    assert.equal((fake.log().match(/COMPILE_OK/g) ?? []).length >= 1, true, fake.log());

    const only = await runSmoketest(`127.0.0.1:${good.port}`, path.join(work, 'work'), log, runProcess);
    assert.equal(only.ok, true, JSON.stringify(only));
    assert.match(only.summary, /all 1 distcc host\(s\) compiled with GCC: /);
  });

  it('reads the target and the compiler’s .comment from a real object', async (t) => {
    if (!tools(t, 'gcc')) return;
    const dir = await tmpDir('obj-');
    await writeFile(path.join(dir, 'x.c'), 'int x(void) { return 1; }\n');
    await execa('gcc', ['-c', 'x.c', '-o', 'x.o'], { cwd: dir });
    const info = readObjectInfo(await readFile(path.join(dir, 'x.o')));
    assert.ok(info);
    const triplet = (await execa('gcc', ['-dumpmachine'])).stdout.trim();
    assert.ok(triplet.startsWith(info.target.replace(/^i386$/, 'i')) || triplet.startsWith(info.target), `${info.target} vs ${triplet}`);
    const version = (await execa('gcc', ['-dumpfullversion'])).stdout.trim();
    assert.ok(compilerIdent(info)?.includes(version), `${compilerIdent(info)} names ${version}`);
    assert.equal(readObjectInfo(Buffer.from('not an object')), null);
  });
});

describe('buildcoord doctor', () => {
  it('flags the host with a different compiler and the dead one, says what to do, exits 1', async (t) => {
    if (!tools(t, 'git', 'gcc', 'distcc', 'distccd', 'distcc-pump', 'objcopy')) return;
    const { good, fake } = await startDaemons();
    const dead = await freePort();
    const url = await coordRepo();
    const cfg = await configFile({ repo: url, distcc_hosts: `127.0.0.1:${good.port}/2,cpp,lzo 127.0.0.1:${fake.port}/2 127.0.0.1:${dead}/2` });
    const started = Date.now();
    const r = await runCli(['doctor', '--config', cfg, '--json']);
    t.diagnostic(`doctor took ${Date.now() - started} ms`);
    const rep = report(r);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.equal(rep.ok, false);

    for (const id of ['remote.reachable', 'remote.writable', 'git.identity', 'clone', 'lock', 'artifacts', 'repo.size', 'main.rate', 'distcc.hosts']) {
      assert.equal(row(rep, id).status, 'ok', `${id}: ${row(rep, id).detail}`);
    }
    assert.match(row(rep, 'git.identity').detail, /buildcoord build1 <build1@buildcoord\.invalid>/);
    assert.equal(row(rep, `distcc.127.0.0.1:${good.port}.port`).status, 'ok');
    const goodCc = row(rep, `distcc.127.0.0.1:${good.port}.compiler`);
    assert.equal(goodCc.status, 'ok', goodCc.detail);
    assert.match(goodCc.detail, /^GCC: .* the same as this builder's; ran there: "compile probe\.c on 127\.0\.0\.1:\d+\/2,lzo completed ok"/);

    const fakeCc = row(rep, `distcc.127.0.0.1:${fake.port}.compiler`);
    assert.equal(fakeCc.status, 'fail');
    assert.match(fakeCc.detail, /99\.0-fake/);
    assert.match(fakeCc.fix ?? '', /install the same compiler on 127\.0\.0\.1 as on this builder .*or remove 127\.0\.0\.1:\d+\/2 from distcc_hosts/);
    assert.equal(fakeCc.data?.compiler_version, 'GCC: (Fake) 99.0-fake');

    const deadPort = row(rep, `distcc.127.0.0.1:${dead}.port`);
    assert.equal(deadPort.status, 'fail');
    assert.match(deadPort.fix ?? '', /start distccd on 127\.0\.0\.1/);
    assert.equal(row(rep, `distcc.127.0.0.1:${dead}.compiler`).status, 'skip');

    // Pump: the good host has ,cpp. Debian 12's stock include server falls back
    // silently (Python 3.11); doctor must see that, and point at pump restore.
    const pump = row(rep, 'pump');
    t.diagnostic(`pump row: ${pump.status}: ${pump.detail}`);
    assert.ok(pump.status === 'ok' || pump.status === 'fail', pump.detail);
    if (pump.status === 'fail') {
      assert.match(pump.detail, /the distribution's include server: the include server did not serve the compile/);
      assert.match(pump.fix ?? '', /buildcoord pump restore/);
    }
  });

  it('with no distcc hosts: the distcc rows are skipped and do not fail; a table for people; --strict fails warnings', async (t) => {
    if (!tools(t, ...ALL_TOOLS)) return;
    const url = await coordRepo();
    const cfg = await configFile({ repo: url });
    // Two more commits on main, so a limit of 1 a day is exceeded.
    for (let i = 0; i < 2; i++) assert.equal((await runCli(['job', 'add', '--type', 'make', '--repo', url])).exitCode, 0);

    const r = await runCli(['doctor', '--config', cfg, '--max-commits-per-day', '1']);
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.split('\n');
    assert.match(lines[0]!, /^CHECK\s+RESULT\s+DETAIL$/);
    assert.match(r.stdout, /^distcc hosts\s+skip\s+none configured/m);
    assert.match(r.stdout, /^main commits\/day\s+WARN\s+3 commit\(s\) on main .*above 1\/day/m);
    for (const tool of ALL_TOOLS) assert.match(r.stdout, new RegExp(`^${tool}\\s+ok\\s+\\S`, 'm'));
    assert.match(r.stdout, /^what to do:\n {2}main commits\/day \(WARN\): main should only record jobs/m);
    assert.match(r.stdout, /^ready: \d+ ok, 1 warning\(s\), 0 failed, 1 skipped$/m);
    assert.doesNotMatch(r.stdout, /pump include server/, 'no pump row without distcc hosts');

    const strict = await runCli(['doctor', '--config', cfg, '--max-commits-per-day', '1', '--strict', '--json']);
    assert.equal(strict.exitCode, 1);
    assert.equal(report(strict).counts.warn, 1);
  });

  it('an unreachable remote fails with what to do; what needs it is skipped, not failed', async (t) => {
    if (!tools(t, 'git')) return;
    const port = await freePort();
    const cfg = await configFile({ repo: `git://127.0.0.1:${port}/coord.git` });
    const r = await runCli(['doctor', '--config', cfg, '--json']);
    assert.equal(r.exitCode, 1);
    const rep = report(r);
    const remote = row(rep, 'remote.reachable');
    assert.equal(remote.status, 'fail');
    assert.match(remote.detail, /cannot reach coordination remote git:\/\/127\.0\.0\.1:\d+\/coord\.git/);
    assert.match(remote.fix ?? '', /check the URL/);
    assert.equal(row(rep, 'remote.writable').status, 'skip');
    assert.equal(row(rep, 'main.rate').status, 'skip');
  });

  it('a held local lock fails its row without making doctor wait for it', async (t) => {
    if (!tools(t, 'git')) return;
    const url = await coordRepo();
    const home = await tmpDir('doctor-home-');
    const cfg = await configFile({ repo: url });
    const env = { BUILDCOORD_HOME: home };
    assert.notEqual((await runCli(['doctor', '--config', cfg, '--json'], { env })).stdout, '', 'a first run makes the clone');
    const store = new Store({ remote: url, home, actor: 'holder' });
    const started = Date.now();
    const r = await store.localLock.with(() => runCli(['doctor', '--config', cfg, '--json'], { env, timeoutMs: 60_000 }));
    store.close();
    const took = Date.now() - started;
    assert.ok(took < 30_000, `doctor did not wait for the lock (${took} ms)`);
    const rep = report(r);
    assert.equal(r.exitCode, 1);
    const lock = row(rep, 'lock');
    assert.equal(lock.status, 'fail');
    assert.match(lock.detail, /\.git\.lock has been held for over a second/);
    assert.match(lock.fix ?? '', /remove the lock directory/);
    assert.equal(row(rep, 'remote.reachable').status, 'ok', row(rep, 'remote.reachable').detail);
    assert.match(row(rep, 'remote.reachable').detail, /ls-remote, the local lock being held/);
    assert.equal(row(rep, 'remote.writable').status, 'ok', row(rep, 'remote.writable').detail);
    assert.equal(row(rep, 'git.identity').status, 'skip');
  });

  it('an artifacts directory that cannot be made fails with what to do', async (t) => {
    if (!tools(t, 'git')) return;
    const url = await coordRepo();
    const dir = await tmpDir('artifacts-');
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'x');
    const cfg = await configFile({ repo: url, artifacts_dir: path.join(file, 'sub') });
    const rep = report(await runCli(['doctor', '--config', cfg, '--json']));
    const a = row(rep, 'artifacts');
    assert.equal(a.status, 'fail');
    assert.match(a.detail, /a-file is not a directory/);
    assert.match(a.fix ?? '', /artifacts_dir/);

    await mkdir(path.join(dir, 'ok'));
    const fine = report(await runCli(['doctor', '--config', cfg, '--json', '--artifacts-dir', path.join(dir, 'ok')]));
    assert.equal(row(fine, 'artifacts').status, 'ok');
    assert.match(row(fine, 'artifacts').detail, /writable, [\d.]+ [KMGT]?i?B free/);
  });
});
