// Setting up a builder as an administrator would, with the real scripts:
// scripts/setup_buildN.sh (and its build1/build2 wrappers) into a temporary
// --prefix, never the real /etc, /opt, /var or /usr/local; the systemd unit
// checked offline with systemd-analyze; the OpenRC script started, queried,
// reloaded and stopped with openrc-run while it supervises a real
// `buildcoord agent`; scripts/uninstall.sh; and the quickstart end to end.
//
// The scripts run from a snapshot of the package taken once (scripts, dist,
// schemas, templates; node_modules linked), so a rebuild of dist/ by someone
// else while this file runs cannot make "the second run changes nothing" lie.

import assert from 'node:assert/strict';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { cleanupAll, git, gitEnv, isCI, onCleanup, repoRoot, requireTool, runCli, tmpDir } from '../helpers/git.js';

after(cleanupAll);

const ROOT = repoRoot();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The package as an administrator would unpack it; see the header. */
let PKG = '';
/** A coordination repository made by `buildcoord init`. */
let COORD = { dir: '', url: '' };

before(async () => {
  PKG = await tmpDir('setup-pkg-');
  for (const rel of ['package.json', 'package-lock.json', 'README.md', 'schemas', 'coordination', 'shared', 'patches', 'dist/agent', 'scripts']) {
    if (existsSync(path.join(ROOT, rel))) await cp(path.join(ROOT, rel), path.join(PKG, rel), { recursive: true, preserveTimestamps: true });
  }
  await symlink(path.join(ROOT, 'node_modules'), path.join(PKG, 'node_modules'));

  const parent = await tmpDir('setup-coord-');
  COORD = { dir: path.join(parent, 'c.git'), url: `file://${path.join(parent, 'c.git')}` };
  const init = await runCli(['init', '--repo', COORD.dir]);
  assert.equal(init.exitCode, 0, init.stderr);
});

// ---------------------------------------------------------------- helpers

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs one of the snapshot's scripts with bash; never throws on a non-zero exit. */
async function script(name: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Run> {
  const r = await execa('bash', [path.join(PKG, 'scripts', name), ...args], {
    cwd: PKG,
    env: { ...(await gitEnv()), NO_COLOR: '1' },
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function show(r: Run): string {
  return `exit ${r.exitCode}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/**
 * The agent's state directories belong to the agent once they exist: setup
 * ends with `buildcoord doctor` when there is one, which fetches into its
 * private clone and probes the artifacts directory. Of these, setup answers
 * for the owner and mode only.
 */
const AGENT_STATE = ['var/lib/buildcoord', 'var/lib/buildcoord/artifacts'];

/** Every entry under dir with its type, mode, owner, mtime and content hash (or link target). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const full = path.join(d, name);
      const rel = path.relative(dir, full);
      const s = await lstat(full);
      const owner = `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}`;
      const meta = `${owner} ${s.mtimeMs}`;
      if (AGENT_STATE.includes(rel)) {
        out[rel] = `agent state dir ${owner}`;
        if (rel === AGENT_STATE[0]) await walk(full);
      } else if (AGENT_STATE.includes(path.dirname(rel)) && name !== 'setup-backups') {
        continue;
      } else if (s.isSymbolicLink()) out[rel] = `link ${await readlink(full)} ${meta}`;
      else if (s.isDirectory()) {
        out[rel] = `dir ${meta}`;
        await walk(full);
      } else out[rel] = `file ${meta} ${createHash('sha256').update(await readFile(full)).digest('hex')}`;
    }
  };
  await walk(dir);
  return out;
}

/** The step lines of a setup run: "setup: STEP: STATUS (...)". */
function steps(stdout: string): Array<{ step: string; status: string }> {
  return [...stdout.matchAll(/^setup: ([a-z-]+):\s+(ok|unchanged|created|updated|installed|switched|fixed|would [a-z]+)\b/gm)].map((m) => ({
    step: m[1]!,
    status: m[2]!,
  }));
}

/**
 * Skips when not root, under CI too: starting an OpenRC service needs root,
 * and a CI that runs as another user cannot do it at all.
 */
function requireRoot(t: TestContext, what: string): boolean {
  if (process.getuid?.() === 0) return true;
  t.skip(`${what} needs root`);
  return false;
}

// ---------------------------------------------------------------- refusals

describe('setup_buildN.sh refuses before it changes anything', () => {
  it('refuses a repository URL with credentials in it, without echoing the token', async () => {
    const prefix = await tmpDir('setup-refuse-');
    const r = await script('setup_build1.sh', ['--repo', 'https://user:tok3nSecret@127.0.0.1/x', '--prefix', prefix]);
    assert.equal(r.exitCode, 2, show(r));
    assert.match(r.stderr, /credentials/);
    assert.match(r.stderr, /ssh key/);
    assert.match(r.stderr, /credential helper/);
    assert.doesNotMatch(r.stdout + r.stderr, /tok3nSecret/);
    assert.deepEqual(readdirSync(prefix), []);
  });

  it('refuses an unreachable remote with exit 3', async () => {
    const prefix = await tmpDir('setup-unreach-');
    const r = await script('setup_build1.sh', ['--repo', `file://${prefix}/missing.git`, '--prefix', prefix]);
    assert.equal(r.exitCode, 3, show(r));
    assert.match(r.stderr, /cannot reach/);
    assert.deepEqual(readdirSync(prefix), []);
  });

  it('refuses bad arguments with exit 2', async () => {
    const prefix = await tmpDir('setup-args-');
    for (const args of [
      ['setup_buildN.sh', 'bad name', '--repo', COORD.url, '--prefix', prefix],
      ['setup_buildN.sh', '--repo', COORD.url, '--prefix', prefix],
      ['setup_build1.sh', '--prefix', prefix],
      ['setup_build1.sh', '--repo', COORD.url, '--labels', 'arch', '--prefix', prefix],
      ['setup_build1.sh', '--repo', COORD.url, '--init', 'upstart', '--prefix', prefix],
      ['setup_build1.sh', '--repo', COORD.url, '--user', 'no-such-user-bc', '--prefix', prefix],
      ['setup_build1.sh', '--repo', COORD.url, '--distcc-hosts', '!!! bad', '--prefix', prefix],
    ]) {
      const r = await script(args[0]!, args.slice(1));
      assert.equal(r.exitCode, 2, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, /^setup: error: /m);
    }
    assert.deepEqual(readdirSync(prefix), []);
  });

  it('checks the config it would write first: a bad agent.json or flag is named in one line and changes nothing', async () => {
    const prefix = await tmpDir('setup-badconfig-');
    const file = path.join(prefix, 'etc/buildcoord/agent.json');
    await mkdir(path.dirname(file), { recursive: true });
    const quoted = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const refused = async (config: object, extra: string[], expected: RegExp) => {
      await writeFile(file, JSON.stringify(config, null, 2) + '\n');
      const before = await snapshot(prefix);
      for (const dry of [[], ['--dry-run']]) {
        const r = await script('setup_build1.sh', ['--repo', COORD.url, '--prefix', prefix, '--init', 'systemd', ...extra, ...dry]);
        assert.equal(r.exitCode, 2, show(r));
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, `one line, not ${lines.length}:\n${show(r)}`);
        assert.match(lines[0]!, expected);
        // The config checks say so; a flag refused by the script itself is exit 2, which means the same.
        if (!extra.includes('--labels')) assert.match(lines[0]!, /nothing was changed$/);
        assert.doesNotMatch(r.stderr, /buildcoord-setup\./, 'the error names a temporary copy');
        assert.doesNotMatch(r.stdout, /^setup: [a-z-]+:\s+(ok|unchanged|created|installed|switched|would)/m, `setup went on:\n${r.stdout}`);
        assert.deepEqual(await snapshot(prefix), before, `setup ${extra.join(' ')} ${dry.join(' ')} changed the prefix:\n${show(r)}`);
      }
    };
    await refused({ builder: 'build1', poll: 'banana' }, [], new RegExp(`^setup: error: ${quoted}: /poll: "banana" `));
    await refused({ builder: 'build1', heartbeat: '1m', lease: '1m' }, [], new RegExp(`^setup: error: ${quoted}: .*lease.* twice .*heartbeat`));
    await refused({ builder: 'build1', distcc_hosts: '127.0.0.1:99999' }, [], new RegExp(`^setup: error: ${quoted}: .*distcc_hosts.*port 99999`));
    await refused({ builder: 'build1' }, ['--distcc-hosts', '!!! bad'], /^setup: error: --distcc-hosts "!!! bad": distcc host "!!!"/);
    await refused({ builder: 'build1' }, ['--distcc-hosts', 'h1/4,gzip'], /^setup: error: --distcc-hosts "h1\/4,gzip": .*,gzip/);
    await refused({ builder: 'build1' }, ['--labels', 'arch=amd64,=x'], /^setup: error: --labels: /);
    assert.deepEqual(Object.keys(await snapshot(prefix)), ['etc', 'etc/buildcoord', 'etc/buildcoord/agent.json']);
  });
});

// ---------------------------------------------------------------- install

describe('setup_buildN.sh into a prefix', () => {
  let prefix = '';
  const args = () => ['--repo', COORD.url, '--prefix', prefix, '--init', 'systemd', '--labels', 'arch=amd64,os=debian-12', '--distcc-hosts', '127.0.0.1:3632/2'];

  before(async () => {
    prefix = await tmpDir('setup-prefix-');
  });

  it('--dry-run prints every action and leaves the prefix empty', async () => {
    const r = await script('setup_build1.sh', [...args(), '--dry-run']);
    assert.equal(r.exitCode, 0, show(r));
    for (const what of ['etc/buildcoord', 'var/lib/buildcoord', 'var/log/buildcoord', 'opt/buildcoord/releases/', 'usr/local/bin/buildcoord', 'etc/buildcoord/agent.json', 'etc/systemd/system/buildcoord.service']) {
      assert.match(r.stdout, new RegExp(`would .*${prefix}/${what}`), `${what} missing from the dry run:\n${r.stdout}`);
    }
    assert.match(r.stdout, /"builder": "build1"/);
    assert.match(r.stdout, /nothing was changed/);
    assert.deepEqual(readdirSync(prefix), [], 'a dry run wrote into the prefix');
  });

  it('installs the program, the config, the directories and the unit', async () => {
    const r = await script('setup_build1.sh', args());
    assert.equal(r.exitCode, 0, show(r));
    const s = steps(r.stdout);
    for (const step of ['etc', 'state', 'logs', 'artifacts', 'wrapper', 'config', 'service']) {
      assert.ok(s.some((x) => x.step === step && x.status === 'created'), `${step} not created:\n${r.stdout}`);
    }
    assert.match(r.stdout, /program:\s+installed/);
    assert.match(r.stdout + r.stderr, /doctor:\s+(skipped|ok)|buildcoord doctor reported problems/);
    // Never enabled under a prefix: it says what it would run on the builder.
    assert.match(r.stdout, /systemctl daemon-reload && systemctl enable buildcoord/);

    const config = JSON.parse(await readFile(path.join(prefix, 'etc/buildcoord/agent.json'), 'utf8'));
    assert.equal(config.builder, 'build1');
    assert.equal(config.repo, COORD.url);
    assert.deepEqual(config.labels, { arch: 'amd64', os: 'debian-12' });
    assert.equal(config.distcc_hosts, '127.0.0.1:3632/2');
    assert.equal(config.artifacts_dir, path.join(prefix, 'var/lib/buildcoord/artifacts'));
    for (const d of ['var/lib/buildcoord', 'var/log/buildcoord', 'var/lib/buildcoord/artifacts']) {
      const st = await stat(path.join(prefix, d));
      assert.ok(st.isDirectory());
      assert.equal(st.mode & 0o777, 0o750, d);
      assert.equal(st.uid, process.getuid?.(), d);
    }
    const release = await readlink(path.join(prefix, 'opt/buildcoord/current'));
    assert.match(release, /^releases\/\d+\.\d+\.\d+[^/]*-[0-9a-f]{12}$/);
    const installed = path.join(prefix, 'opt/buildcoord', release);
    assert.ok(existsSync(path.join(installed, 'node_modules/yargs/package.json')), 'production dependencies are installed');
    assert.ok(!existsSync(path.join(installed, 'node_modules/typescript')), 'development dependencies are not');
    assert.ok(!existsSync(path.join(installed, 'dist/test')), 'tests are not installed');

    // The wrapper runs the installed copy, and finds the prefix's config by default.
    const wrapper = path.join(prefix, 'usr/local/bin/buildcoord');
    assert.ok(((await stat(wrapper)).mode & 0o111) !== 0, 'the wrapper is executable');
    const version = await execa(wrapper, ['--version'], { reject: false, env: await gitEnv(), extendEnv: false });
    assert.equal(version.exitCode, 0, version.stderr);
    assert.equal(version.stdout.trim(), JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8')).version);
    const home = await tmpDir('setup-cli-home-');
    const list = await execa(wrapper, ['job', 'list', '--json'], { reject: false, env: { ...(await gitEnv()), BUILDCOORD_HOME: home }, extendEnv: false });
    assert.equal(list.exitCode, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), []);

    const unit = await readFile(path.join(prefix, 'etc/systemd/system/buildcoord.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${prefix}/usr/local/bin/buildcoord agent --config ${prefix}/etc/buildcoord/agent.json$`, 'm'));
    assert.match(unit, new RegExp(`^Environment=BUILDCOORD_HOME=${prefix}/var/lib/buildcoord$`, 'm'));
    assert.doesNotMatch(unit, /[= ]\/(etc|var)\/(lib\/|log\/)?buildcoord/, 'an unsubstituted path is left in the installed unit');
  });

  it('a second run changes nothing: every step unchanged, every file, mode and mtime the same', async () => {
    const before = await snapshot(prefix);
    const r = await script('setup_build1.sh', args());
    assert.equal(r.exitCode, 0, show(r));
    const s = steps(r.stdout);
    assert.ok(s.length >= 10, r.stdout);
    for (const x of s) assert.ok(x.status === 'unchanged' || x.status === 'ok', `${x.step}: ${x.status}\n${r.stdout}`);
    assert.match(r.stdout, /done: 0 changed, \d+ unchanged/);
    assert.deepEqual(await snapshot(prefix), before);

    // And a dry run now has nothing to do either.
    const dry = await script('setup_build1.sh', [...args(), '--dry-run']);
    assert.equal(dry.exitCode, 0, show(dry));
    assert.match(dry.stdout, /0 change\(s\) would be made/);
    assert.deepEqual(await snapshot(prefix), before);
  });

  it('keeps what a person added to the config, and backs up what it replaces', async () => {
    const file = path.join(prefix, 'etc/buildcoord/agent.json');
    const edited = { ...JSON.parse(await readFile(file, 'utf8')), poll: '30s', concurrency: 2 };
    await writeFile(file, JSON.stringify(edited, null, 2) + '\n');
    const r = await script('setup_build1.sh', [...args().slice(0, -4), '--labels', 'arch=arm64']);
    assert.equal(r.exitCode, 0, show(r));
    assert.match(r.stdout, /config:\s+updated .*previous kept in /);
    const now = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(now.poll, '30s');
    assert.equal(now.concurrency, 2);
    assert.deepEqual(now.labels, { arch: 'arm64' });
    assert.equal(now.distcc_hosts, '127.0.0.1:3632/2', 'a setting not given again is kept');
    const backups = path.join(prefix, 'var/lib/buildcoord/setup-backups');
    const [stamp] = readdirSync(backups);
    const kept = JSON.parse(await readFile(path.join(backups, stamp!, 'etc/buildcoord/agent.json'), 'utf8'));
    assert.deepEqual(kept.labels, { arch: 'amd64', os: 'debian-12' });
  });

  it('refuses to replace a config that is not valid JSON', async () => {
    const file = path.join(prefix, 'etc/buildcoord/agent.json');
    const good = await readFile(file, 'utf8');
    await writeFile(file, '{ "builder": ');
    const r = await script('setup_build1.sh', args());
    assert.equal(r.exitCode, 2, show(r));
    assert.match(r.stderr, /agent\.json: not valid JSON/);
    assert.equal(await readFile(file, 'utf8'), '{ "builder": ');
    await writeFile(file, good);
  });

  it('the unit passes systemd-analyze verify; its exposure score is printed', async (t) => {
    if (!requireTool('systemd-analyze', t)) return;
    const unit = path.join(prefix, 'etc/systemd/system/buildcoord.service');
    const verify = await execa('systemd-analyze', ['verify', unit], { reject: false });
    assert.equal(verify.exitCode, 0, `systemd-analyze verify ${unit}:\n${verify.stdout}\n${verify.stderr}`);

    const score = async (file: string): Promise<number> => {
      const r = await execa('systemd-analyze', ['security', '--offline=true', file], { reject: false });
      const m = /Overall exposure level for [^:]+: (\d+(?:\.\d+)?)/.exec(r.stdout);
      assert.ok(m, `no exposure score from systemd-analyze security:\n${r.stdout}\n${r.stderr}`);
      return Number(m[1]);
    };
    // As shipped (User=buildcoord) and as installed in this test (the current user).
    const shipped = await score(path.join(PKG, 'scripts/buildcoord.service'));
    const installed = await score(unit);
    const line = `systemd-analyze security --offline=true: exposure ${shipped} as shipped (User=buildcoord), ${installed} as installed here (User=${userInfo().username})`;
    console.log(line);
    t.diagnostic(line);
    assert.ok(shipped <= 2.0, `the shipped unit's exposure rose to ${shipped}: keep the hardening`);
  });

  it('the unit drains, restarts on failure, logs to journald and is hardened', async () => {
    const unit = await readFile(path.join(ROOT, 'scripts/buildcoord.service'), 'utf8');
    for (const line of [
      'ExecStart=/usr/local/bin/buildcoord agent --config /etc/buildcoord/agent.json',
      'User=buildcoord',
      'Restart=on-failure',
      'KillSignal=SIGTERM',
      'KillMode=mixed',
      'TimeoutStopSec=11min',
      'StandardOutput=journal',
      'Environment=BUILDCOORD_HOME=/var/lib/buildcoord',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'ReadWritePaths=/var/lib/buildcoord /var/log/buildcoord -/var/lib/buildcoord/artifacts',
    ]) {
      assert.ok(unit.split('\n').includes(line), `scripts/buildcoord.service lacks ${line}`);
    }
  });
});

describe('setup_buildN.sh with an ssh key', () => {
  it('hands the key to the agent through agent.env, never its content', async (t) => {
    if (!requireTool('ssh-keygen', t)) return;
    const keys = await tmpDir('setup-key-');
    const key = path.join(keys, 'id_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'buildcoord-test', '-f', key]);
    const prefix = await tmpDir('setup-ssh-');
    const r = await script('setup_buildN.sh', ['build7', '--repo', COORD.url, '--ssh-key', key, '--prefix', prefix, '--init', 'none']);
    assert.equal(r.exitCode, 0, show(r));
    assert.match(r.stdout, /ssh-key:\s+created/);
    const envFile = path.join(prefix, 'etc/buildcoord/agent.env');
    assert.equal(
      await readFile(envFile, 'utf8'),
      `# Written by scripts/setup_buildN.sh: the ssh key the agent uses for the coordination remote.\nGIT_SSH_COMMAND="ssh -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes"\n`,
    );
    assert.equal((await stat(envFile)).mode & 0o777, 0o640);
    // With no service manager to load agent.env, the printed command loads it itself.
    assert.ok(r.stdout.includes(`run "set -a; . ${envFile}; set +a; exec ${path.join(prefix, 'usr/local/bin/buildcoord')} agent --config ${path.join(prefix, 'etc/buildcoord/agent.json')}"`), r.stdout);
    const secret = (await readFile(key, 'utf8')).split('\n')[1]!;
    for (const f of ['etc/buildcoord/agent.json', 'etc/buildcoord/agent.env']) {
      assert.ok(!(await readFile(path.join(prefix, f), 'utf8')).includes(secret), `${f} holds key material`);
    }
    // Run again without --ssh-key: the key set up before stays.
    const again = await script('setup_buildN.sh', ['build7', '--repo', COORD.url, '--prefix', prefix, '--init', 'none']);
    assert.equal(again.exitCode, 0, show(again));
    assert.ok(existsSync(envFile));
    assert.match(again.stdout, /run "set -a; \. \S+agent\.env; set \+a; exec /, 'the key set up before is still loaded');
  });
});

// ---------------------------------------------------------------- OpenRC

/** PIDs whose command line contains every one of the strings. */
function pidsWith(...parts: string[]): number[] {
  const found = new Map<number, number>(); // pid -> parent pid
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = state.slice(state.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      if (parts.every((p) => cmd.includes(p))) found.set(Number(entry), Number(fields[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  // A child caught between fork and exec (the agent starting a git) still shows its parent's
  // command line: it is the same program for a moment, not a second one.
  return [...found].filter(([, ppid]) => !found.has(ppid)).map(([pid]) => pid);
}

type Maybe<T> = T | null | undefined | false;

async function waitUntil<T>(what: string, probe: () => Maybe<T> | Promise<Maybe<T>>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('the OpenRC service', () => {
  it('scripts/buildcoord.openrc parses (sh -n)', async () => {
    const r = await execa('sh', ['-n', path.join(ROOT, 'scripts/buildcoord.openrc')], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    const text = await readFile(path.join(ROOT, 'scripts/buildcoord.openrc'), 'utf8');
    assert.match(text, /^#!\/sbin\/openrc-run$/m);
    assert.match(text, /^supervisor=supervise-daemon$/m);
    assert.match(text, /^retry="TERM\/660\/KILL\/5"$/m);
    assert.match(text, /^: "\$\{command_user:=buildcoord:buildcoord\}"$/m);
    assert.match(text, /--signal HUP/);
  });

  it('starts, reports, reloads and stops a real agent with openrc-run', { timeout: 180_000 }, async (t) => {
    if (!requireTool('openrc-run', t)) return;
    if (!requireRoot(t, 'openrc-run start')) return;
    if (!requireTool('unshare', t)) return;
    // One service name per machine: never get in the way of a real one.
    if (existsSync('/etc/init.d/buildcoord') || existsSync('/run/openrc/started/buildcoord') || existsSync('/run/openrc/starting/buildcoord')) {
      const why = 'a service named buildcoord is installed or running on this machine';
      if (isCI()) throw new Error(why);
      t.skip(why);
      return;
    }

    const prefix = await tmpDir('setup-openrc-');
    const coordParent = await tmpDir('setup-openrc-coord-');
    const coord = path.join(coordParent, 'c.git');
    const init = await execa(process.execPath, [path.join(PKG, 'dist/agent/cli/main.js'), 'init', '--repo', coord], {
      env: { ...(await gitEnv()), BUILDCOORD_HOME: await tmpDir('setup-openrc-init-') },
      extendEnv: false,
      reject: false,
    });
    assert.equal(init.exitCode, 0, init.stderr);

    const r = await script('setup_build2.sh', ['--repo', `file://${coord}`, '--prefix', prefix, '--init', 'openrc']);
    assert.equal(r.exitCode, 0, show(r));
    assert.match(r.stdout, /rc-update add buildcoord default/);
    const svc = path.join(prefix, 'etc/init.d/buildcoord');
    const syntax = await execa('sh', ['-n', svc], { reject: false });
    assert.equal(syntax.exitCode, 0, syntax.stderr);

    // openrc-run only starts services when OpenRC counts as booted.
    let madeRunDir = false;
    let madeSoftlevel = false;
    if (!existsSync('/run/openrc')) {
      await mkdir('/run/openrc');
      madeRunDir = true;
    }
    if (!existsSync('/run/openrc/softlevel')) {
      await writeFile('/run/openrc/softlevel', '');
      madeSoftlevel = true;
    }
    onCleanup(async () => {
      if (madeSoftlevel) await rm('/run/openrc/softlevel', { force: true });
      if (madeRunDir) await rm('/run/openrc', { recursive: true, force: true });
    });

    // openrc-run moves the service into cgroups of its own (into the root of
    // every cgroup v1 hierarchy, and a new cgroup v2 directory): on a machine
    // OpenRC did not boot those belong to someone else. It runs in a mount
    // namespace without them, where it finds no cgroups to manage.
    const openrc = async (cmd: string) => {
      const res = await execa(
        'unshare',
        ['--mount', '--propagation', 'private', 'sh', '-c', 'if mountpoint -q /sys/fs/cgroup; then umount -R /sys/fs/cgroup || exit 97; fi; exec openrc-run "$0" "$1"', svc, cmd],
        { env: await gitEnv(), extendEnv: false, reject: false, timeout: 60_000 },
      );
      assert.notEqual(res.exitCode, 97, `could not hide the cgroups from openrc-run: ${res.stderr}`);
      return { exitCode: res.exitCode ?? -1, out: `${res.stdout}\n${res.stderr}` };
    };
    const agentCmd = [path.join(prefix, 'opt/buildcoord/current/dist/agent/cli/main.js'), 'agent', '--config', path.join(prefix, 'etc/buildcoord/agent.json')];
    let started = false;
    onCleanup(async () => {
      if (started && pidsWith(...agentCmd).length > 0) await openrc('stop').catch(() => undefined);
      // A failed start leaves state OpenRC cannot reset for a script outside
      // /etc/init.d (zap resolves the name there): remove ours by hand.
      for (const state of ['starting', 'started', 'stopping', 'inactive', 'wasinactive', 'failed']) {
        const link = `/run/openrc/${state}/buildcoord`;
        if ((await readlink(link).catch(() => '')) === svc) await rm(link, { force: true });
      }
      for (const pid of [...pidsWith('supervise-daemon', prefix), ...pidsWith(...agentCmd)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    });

    const log = path.join(prefix, 'var/log/buildcoord/agent.log');
    const readLog = () => readFile(log, 'utf8').catch(() => '');

    started = true;
    const start = await openrc('start');
    assert.equal(start.exitCode, 0, `start: ${start.out}\n${await readLog()}`);
    const agentPid = (
      await waitUntil('the agent process', () => {
        const p = pidsWith(...agentCmd);
        return p.length ? p : null;
      })
    )[0]!;
    const supervisors = pidsWith('supervise-daemon', prefix);
    assert.equal(supervisors.length, 1, 'one supervise-daemon');
    assert.equal(readFileSync(`/proc/${agentPid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1], String(supervisors[0]), 'the agent is supervise-daemon\'s child');
    const env = readFileSync(`/proc/${agentPid}/environ`, 'utf8').split('\0');
    assert.ok(env.includes(`BUILDCOORD_HOME=${path.join(prefix, 'var/lib/buildcoord')}`), 'BUILDCOORD_HOME is the state directory');

    const status = await openrc('status');
    assert.equal(status.exitCode, 0, status.out);
    assert.match(status.out, /status: started/);

    // A real agent: it heartbeats on the coordination repository.
    await waitUntil('heartbeat/build2 on the coordination repository', async () => (await git(coordParent, '--git-dir', coord, 'for-each-ref', 'refs/heads/heartbeat/build2')) !== '');
    await waitUntil('"agent starting" in the log', async () => (await readLog()).includes('"msg":"agent starting"'));

    const reload = await openrc('reload');
    assert.equal(reload.exitCode, 0, reload.out);
    await waitUntil('"config reloaded" in the log', async () => (await readLog()).includes('"msg":"config reloaded"'));
    assert.deepEqual(pidsWith(...agentCmd), [agentPid], 'reload keeps the same process');

    const stop = await openrc('stop');
    assert.equal(stop.exitCode, 0, `stop: ${stop.out}\n${await readLog()}`);
    await waitUntil('the agent to exit', () => pidsWith(...agentCmd).length === 0, 15_000);
    await waitUntil('supervise-daemon to exit', () => pidsWith('supervise-daemon', prefix).length === 0, 15_000);
    started = false;
    const after = await readLog();
    assert.match(after, /"msg":"signal: draining"/);
    assert.match(after, /"msg":"stopped"/);
    const stopped = await openrc('status');
    assert.equal(stopped.exitCode, 3, stopped.out);
    assert.match(stopped.out, /status: stopped/);

    // Uninstalling keeps the log and the state.
    const un = await script('uninstall.sh', ['--prefix', prefix]);
    assert.equal(un.exitCode, 0, show(un));
    assert.ok(!existsSync(svc));
    assert.ok(existsSync(log));
  });
});

// ---------------------------------------------------------------- uninstall

describe('uninstall.sh', () => {
  it('removes the service and the program, keeps the data unless --purge', async () => {
    const prefix = await tmpDir('setup-uninstall-');
    const r = await script('setup_build1.sh', ['--repo', COORD.url, '--prefix', prefix, '--init', 'systemd']);
    assert.equal(r.exitCode, 0, show(r));
    const config = await readFile(path.join(prefix, 'etc/buildcoord/agent.json'), 'utf8');
    await writeFile(path.join(prefix, 'var/lib/buildcoord/state-marker'), 'kept\n');

    const before = await snapshot(prefix);
    const dry = await script('uninstall.sh', ['--prefix', prefix, '--dry-run']);
    assert.equal(dry.exitCode, 0, show(dry));
    assert.match(dry.stdout, /would remove .*opt\/buildcoord/);
    assert.deepEqual(await snapshot(prefix), before, 'a dry run changed something');

    const un = await script('uninstall.sh', ['--prefix', prefix]);
    assert.equal(un.exitCode, 0, show(un));
    for (const gone of ['etc/systemd/system/buildcoord.service', 'usr/local/bin/buildcoord', 'opt/buildcoord']) {
      assert.ok(!existsSync(path.join(prefix, gone)), `${gone} is still there`);
    }
    assert.equal(await readFile(path.join(prefix, 'etc/buildcoord/agent.json'), 'utf8'), config);
    assert.equal(await readFile(path.join(prefix, 'var/lib/buildcoord/state-marker'), 'utf8'), 'kept\n');
    assert.ok(existsSync(path.join(prefix, 'var/log/buildcoord')));
    assert.match(un.stdout, /state:\s+kept/);

    const again = await script('uninstall.sh', ['--prefix', prefix]);
    assert.equal(again.exitCode, 0, show(again));
    assert.doesNotMatch(again.stdout, /removed/);

    // Setting up again over the kept data works and keeps it.
    const re = await script('setup_build1.sh', ['--repo', COORD.url, '--prefix', prefix, '--init', 'systemd']);
    assert.equal(re.exitCode, 0, show(re));
    assert.match(re.stdout, /config:\s+unchanged/);
    assert.equal(await readFile(path.join(prefix, 'var/lib/buildcoord/state-marker'), 'utf8'), 'kept\n');

    const purge = await script('uninstall.sh', ['--prefix', prefix, '--purge']);
    assert.equal(purge.exitCode, 0, show(purge));
    for (const gone of ['etc/buildcoord', 'var/lib/buildcoord', 'var/log/buildcoord', 'opt/buildcoord', 'usr/local/bin/buildcoord']) {
      assert.ok(!existsSync(path.join(prefix, gone)), `${gone} survived --purge`);
    }
  });

  it('leaves a buildcoord command it did not install', async () => {
    const prefix = await tmpDir('setup-uninstall-foreign-');
    await mkdir(path.join(prefix, 'usr/local/bin'), { recursive: true });
    await writeFile(path.join(prefix, 'usr/local/bin/buildcoord'), '#!/bin/sh\necho someone else\n', { mode: 0o755 });
    const un = await script('uninstall.sh', ['--prefix', prefix, '--purge']);
    assert.equal(un.exitCode, 0, show(un));
    assert.ok(existsSync(path.join(prefix, 'usr/local/bin/buildcoord')));
  });
});

// ---------------------------------------------------------------- quickstart

/** Whether pid is a live (not zombie) process whose command line contains what. */
function alive(pid: number, what: string): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (state.charAt(state.lastIndexOf(')') + 2) === 'Z') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(what);
  } catch {
    return false;
  }
}

/** What a quickstart run says it started: the agents' and distccd's PIDs (and its port), and its home. */
function started(stdout: string): { agents: Map<string, number>; distccd: { pid: number; port: number } | null; home: string } {
  const agents = new Map<string, number>();
  let home = '';
  for (const m of stdout.matchAll(/^(build[12]): pid (\d+), log (\/\S+)\/build[12]\.log$/gm)) {
    agents.set(m[1]!, Number(m[2]));
    home = m[3]!;
  }
  assert.deepEqual([...agents.keys()], ['build1', 'build2'], `the agents' PIDs are not shown:\n${stdout}`);
  const d = /^distccd: pid (\d+), 127\.0\.0\.1:(\d+), log /m.exec(stdout);
  return { agents, distccd: d ? { pid: Number(d[1]), port: Number(d[2]) } : null, home };
}

/** Each started process with what its command line holds; distccd's own children too. */
function processes(s: ReturnType<typeof started>): Array<[number, string]> {
  const all: Array<[number, string]> = [...s.agents].map(([b, pid]) => [pid, `agent --builder ${b}`]);
  if (s.distccd !== null) {
    const what = `--port ${s.distccd.port} `;
    all.push([s.distccd.pid, what]);
    for (const pid of pidsWith('distccd', what)) if (pid !== s.distccd.pid) all.push([pid, what]);
  }
  return all;
}

/** The safety net: TERM (distccd then stops its children), then KILL what is left. */
async function stopAll(list: Array<[number, string]>): Promise<void> {
  const live = () => list.filter(([pid, what]) => alive(pid, what));
  const signal = (sig: NodeJS.Signals) => {
    for (const [pid] of live()) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone meanwhile */
      }
    }
  };
  signal('SIGTERM');
  await waitUntil('the processes quickstart started to exit', () => live().length === 0, 15_000).catch(() => signal('SIGKILL'));
}

async function runQuickstart(args: string[], tmp: string, cwd = ROOT): Promise<Run> {
  // TMPDIR: its home is made under a directory of the test's (mode 700, as
  // mkdtemp makes them), so whatever it leaves is removed with it. Its output
  // goes to files, not pipes: a process it leaves behind that holds them open
  // must fail the test, not hang it.
  const out = await tmpDir('quickstart-out-');
  const fds = [openSync(path.join(out, 'stdout'), 'w'), openSync(path.join(out, 'stderr'), 'w')] as const;
  try {
    const child = spawn('bash', ['scripts/quickstart.sh', '--no-install', ...args], {
      cwd,
      env: { ...(await gitEnv()), NO_COLOR: '1', TMPDIR: tmp },
      stdio: ['ignore', fds[0], fds[1]],
      timeout: 280_000,
    });
    const exitCode = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : 0)));
    });
    return { exitCode, stdout: await readFile(path.join(out, 'stdout'), 'utf8'), stderr: await readFile(path.join(out, 'stderr'), 'utf8') };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

const distccdInstalled = async () => (await execa('sh', ['-c', 'command -v distccd'], { reject: false })).exitCode === 0;

describe('quickstart', () => {
  it('bash scripts/quickstart.sh --jobs 2 --no-install runs end to end, shows the run, and leaves nothing behind', { timeout: 300_000 }, async () => {
    const tmp = await tmpDir('quickstart-');
    const r = await runQuickstart(['--jobs', '2'], tmp);
    const s = started(r.stdout);
    const all = processes(s);
    onCleanup(() => stopAll(all));
    assert.equal(r.exitCode, 0, `quickstart failed:\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
    assert.match(r.stdout, /builds completed/);
    if (await distccdInstalled()) assert.ok(s.distccd !== null, `distccd is installed but was not started:\n${r.stdout}`);
    // The distccd it started is used (as root it must not die on the private TMPDIR).
    if (s.distccd !== null) assert.match(r.stdout, /^distccd compiled [1-9]\d* files for the builders$/m);

    // The jobs it queued, each claimed by one of the two agents.
    const queue = r.stdout.slice(r.stdout.indexOf('== Queue 2 make jobs'), r.stdout.indexOf('== Builds running'));
    const queued = [...queue.matchAll(/^(job_\S+)$/gm)].map((m) => m[1]!);
    assert.equal(queued.length, 2, queue);
    const claims = [...r.stdout.matchAll(/^(build[12]) claimed (job_\S+) \(attempt (\d+)\)$/gm)];
    assert.deepEqual([...new Set(claims.map((m) => m[2]))].sort(), [...queued].sort(), `claims:\n${r.stdout}`);
    assert.match(r.stdout, /^job_\S+\s+completed\s+.*\bmake succeeded\b/m);
    // The message from build1, in build2's list.
    assert.match(r.stdout, /^== A message from build1 to build2$/m);
    assert.match(r.stdout, /^msg_\S+\s+build1\s+build2\s+info\s+quickstart done\s/m);
    // The fleet status table: both builders, and the queue all done.
    const fleet = r.stdout.slice(r.stdout.indexOf('== The fleet'));
    assert.match(fleet, /^BUILDER\s+HEALTH\s+HEARTBEAT\s/m);
    assert.match(fleet, /^build1\s+healthy\s+\d+s ago\s/m);
    assert.match(fleet, /^build2\s+healthy\s+\d+s ago\s/m);
    assert.match(fleet, /^queue: 0 queued, 0 running, 2 completed, 0 failed/m);

    // Nothing it started is left: not the agents, not distccd (its children
    // may take a moment after it), not its home.
    for (const pid of [...s.agents.values(), ...(s.distccd ? [s.distccd.pid] : [])]) {
      assert.ok(!all.some(([p, what]) => p === pid && alive(p, what)), `pid ${pid} is still running after quickstart ended`);
    }
    await waitUntil('distccd\'s children to exit', () => all.every(([pid, what]) => !alive(pid, what)), 5_000);
    assert.equal(path.dirname(s.home), tmp);
    assert.ok(!existsSync(s.home), `${s.home} was left behind`);
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('--keep leaves the agents and distccd running, and how to stop them and remove the state works', { timeout: 300_000 }, async () => {
    const tmp = await tmpDir('quickstart-keep-');
    const r = await runQuickstart(['--jobs', '1', '--keep'], tmp);
    let shown: ReturnType<typeof started> | null = null;
    try {
      shown = started(r.stdout);
    } catch {
      /* asserted below */
    }
    // Whatever happens below, nothing of this run outlives the test.
    const all = shown ? processes(shown) : [];
    onCleanup(() => stopAll(all));
    assert.equal(r.exitCode, 0, `quickstart --keep failed:\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
    const s = started(r.stdout);
    if (await distccdInstalled()) assert.ok(s.distccd !== null, `distccd is installed but was not started:\n${r.stdout}`);

    const left = /^Left running \(--keep\): (.+)$/m.exec(r.stdout);
    assert.ok(left, r.stdout);
    for (const [b, pid] of s.agents) assert.match(left[1]!, new RegExp(`\\bagent ${b} pid ${pid}\\b`));
    if (s.distccd !== null) assert.match(left[1]!, new RegExp(`\\bdistccd pid ${s.distccd.pid}\\b`));
    const stop = /^Stop them with: (kill -TERM((?: \d+)+))$/m.exec(r.stdout);
    assert.ok(stop, `no stop command:\n${r.stdout}`);
    const mine = [...s.agents.values(), ...(s.distccd ? [s.distccd.pid] : [])];
    assert.deepEqual(stop[2]!.trim().split(' ').map(Number).sort(), mine.sort(), 'the stop command covers exactly what it started');
    for (const [pid, what] of all.filter(([pid]) => mine.includes(pid))) assert.ok(alive(pid, what), `${what} (pid ${pid}) is not running`);
    assert.match(r.stdout, new RegExp(`^State kept in ${s.home}$`, 'm'));
    const remove = /^Remove it with: rm -rf (\S+)/m.exec(r.stdout);
    assert.ok(remove, `no remove command:\n${r.stdout}`);
    assert.equal(remove[1], s.home);
    assert.equal(path.dirname(s.home), tmp);
    for (const f of ['build1.log', 'build2.log', 'coordination.git']) assert.ok(existsSync(path.join(s.home, f)), `${f} is not in ${s.home}`);

    // As it says: stop them, then remove the state.
    const kill = await execa('sh', ['-c', stop[1]!], { reject: false });
    assert.equal(kill.exitCode, 0, kill.stderr);
    await waitUntil('the processes quickstart --keep left to exit', () => all.every(([pid, what]) => !alive(pid, what)), 30_000);
    await rm(remove[1]!, { recursive: true });
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('a run that fails keeps its home and says where', async () => {
    // The package snapshot has no examples/: the first step fails.
    const tmp = await tmpDir('quickstart-fail-');
    const r = await runQuickstart([], tmp, PKG);
    assert.notEqual(r.exitCode, 0, show(r));
    const kept = /^State kept in (\S+)$/m.exec(r.stderr);
    assert.ok(kept, show(r));
    assert.equal(path.dirname(kept[1]!), tmp);
    assert.ok(existsSync(path.join(kept[1]!, 'quickstart.json')), `${kept[1]} is gone`);
    assert.match(r.stderr, new RegExp(`^Remove it with: rm -rf ${kept[1]}$`, 'm'));
  });
});
