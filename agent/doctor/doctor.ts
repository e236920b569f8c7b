// `buildcoord doctor`: everything this builder needs, checked for real and
// reported as rows (ok / warn / fail / skip), each failing row with what to do.
//
// Nothing here changes shared state: the remote is probed with a dry-run
// push, the distcc hosts with one tiny compile each, pump mode with one tiny
// pump compile. Checks that depend on something that failed are still run
// where they can say something useful, and skipped (not failed) otherwise.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { FileConfig } from '../config.js';
import { PermissionError, UnreachableError } from '../errors.js';
import { DEFAULT_ARTIFACTS_DIR } from '../builds/artifacts.js';
import { hostsValue, parseDistccHosts, probeTcp, type HostSpec } from '../builds/distcc.js';
import { pumpInstallInfo, pumpProbe } from '../builds/pump.js';
import { runProcess, type ProcessRunner } from '../builds/runner.js';
import { runSmoketest } from '../builds/smoketest.js';
import { spawnGit, readRef } from '../store/git.js';
import type { Store } from '../store/store.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckRow {
  /** Stable, for scripts: remote.reachable, tool.gcc, distcc.127.0.0.1:3632.compiler, ... */
  id: string;
  /** For people: the first column. */
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do, on warn and fail rows. */
  fix?: string;
  data?: Record<string, unknown>;
}

export interface DoctorReport {
  ok: boolean;
  builder: string | null;
  remote: string;
  checks: CheckRow[];
  counts: Record<CheckStatus, number>;
}

export interface DoctorOptions {
  store: Store;
  config: FileConfig;
  home: string;
  builder: string | null;
  /** DISTCC_HOSTS as resolved by the caller (flag > environment > config); null or '' for none. */
  distccHosts: string | null;
  artifactsDir?: string | null;
  env?: NodeJS.ProcessEnv;
  clock?: () => Date;
  runner?: ProcessRunner;
  /** main's commits per day above which the fleet is said to be misconfigured (default 2000). */
  maxCommitsPerDay?: number;
  /** Warnings fail too. */
  strict?: boolean;
}

export const DEFAULT_MAX_COMMITS_PER_DAY = 2000;
const LOW_SPACE_BYTES = 1024 ** 3;
const BIG_REPO_BYTES = 512 * 1024 ** 2;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function firstLine(text: string): string {
  return (
    text
      .replace(/\x1b\[[0-9;]*m/g, '')
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? ''
  );
}

function localPath(remote: string): string | null {
  if (remote.startsWith('file://')) return fileURLToPath(remote);
  if (remote.startsWith('/')) return remote;
  return null;
}

interface ToolSpec {
  name: string;
  args: string[] | null;
  pkg: string;
  /** What the builder needs it for. */
  for: string;
}

const TOOLS: ToolSpec[] = [
  { name: 'git', args: ['--version'], pkg: 'git', for: 'coordination and source checkouts' },
  { name: 'mvn', args: ['-B', '-v'], pkg: 'maven', for: 'maven jobs' },
  { name: 'java', args: ['-version'], pkg: 'default-jdk-headless', for: 'maven jobs' },
  { name: 'dpkg-buildpackage', args: ['--version'], pkg: 'dpkg-dev', for: 'deb jobs' },
  { name: 'gcc', args: ['--version'], pkg: 'gcc', for: 'make jobs and distcc' },
  { name: 'distcc', args: ['--version'], pkg: 'distcc', for: 'distributed compiles' },
  { name: 'distcc-pump', args: null, pkg: 'distcc-pump', for: 'pump mode' },
];

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? (() => new Date());
  const runner = opts.runner ?? runProcess;
  const store = opts.store;
  const rows: CheckRow[] = [];
  const add = (row: CheckRow) => {
    rows.push(row);
    return row;
  };
  const errorFix = (e: unknown, fallback: string): string =>
    e instanceof PermissionError
      ? 'the remote refuses this host: check the ssh deploy key or token has write access to the repository'
      : e instanceof UnreachableError
        ? 'check the URL ("repo" in the config, --repo or BUILDCOORD_REPO), the network and that the git server is up'
        : fallback;
  const exec = (cmd: string, args: string[], cwd?: string, timeout = 20_000) =>
    execa(cmd, args, { env: { ...env, LC_ALL: 'C' }, extendEnv: false, reject: false, timeout, stdin: 'ignore', cwd });

  // ---------------------------------------------------------------- local lock (first)
  // Everything that fetches waits for this lock (up to minutes): when somebody
  // holds it, the remote is checked without it (ls-remote, and a dry-run push
  // from what the clone already has) instead of hanging here.
  let lockFree = await store.localLock.isFree();
  for (let i = 0; !lockFree && i < 10; i++) {
    // A running agent takes the lock for a transaction now and then: give it a moment.
    await new Promise((r) => setTimeout(r, 100));
    lockFree = await store.localLock.isFree();
  }
  const lockRow: CheckRow = lockFree
    ? { id: 'lock', check: 'local lock', status: 'ok', detail: `${store.localLock.path} is free` }
    : {
        id: 'lock',
        check: 'local lock',
        status: 'fail',
        detail: `${store.localLock.path} has been held for over a second`,
        fix: 'another buildcoord process on this host is in a transaction (or stuck in one); if none is running, remove the lock directory',
      };

  // ---------------------------------------------------------------- coordination remote
  let tip: string | null = null;
  const t0 = Date.now();
  try {
    // With the lock free: a real fetch into the private clone, as every command does.
    tip = lockFree ? (await store.read([])).commit : await store.remoteTip();
    const how = lockFree ? 'fetched' : 'ls-remote, the local lock being held,';
    if (!tip) {
      add({ id: 'remote.reachable', check: 'coordination remote', status: 'fail', detail: `${store.remote} answers but has no main branch`, fix: `run \`buildcoord init --repo ${store.remote}\`` });
    } else {
      add({ id: 'remote.reachable', check: 'coordination remote', status: 'ok', detail: `${store.remote}: main at ${tip.slice(0, 12)} (${how} in ${Date.now() - t0} ms)`, data: { main: tip } });
    }
  } catch (e) {
    add({ id: 'remote.reachable', check: 'coordination remote', status: 'fail', detail: (e as Error).message.split('\n')[0]!, fix: errorFix(e, 'see the message; run the command with --debug for details') });
  }

  const cloneDir = store.cloneDir;
  // What the clone has of main: the dry-run push needs an object it holds (any commit the remote has will do).
  const localMain = (await stat(join(cloneDir, 'HEAD')).catch(() => null)) ? await readRef(cloneDir, 'refs/remotes/origin/main') : null;
  if (!tip || !localMain) {
    add({ id: 'remote.writable', check: 'remote writable', status: 'skip', detail: tip ? 'the private clone has not fetched main yet' : 'the remote could not be read' });
  } else {
    const probeRef = 'refs/heads/buildcoord-doctor-probe';
    const r = await spawnGit(cloneDir, ['push', '--dry-run', '--porcelain', '--no-verify', 'origin', `${localMain}:${probeRef}`], { timeoutMs: 60_000 });
    const line = r.stdout.split('\n').find((l) => l.includes(`:${probeRef}\t`)) ?? '';
    let fsProblem: string | null = null;
    const path = localPath(store.remote);
    if (path) {
      // A dry run over a local path never writes, so it cannot see file permissions: look at them.
      for (const sub of ['objects', 'refs/heads']) {
        try {
          await access(join(path, sub), constants.W_OK);
        } catch (e) {
          fsProblem = `${join(path, sub)} is not writable by this user (${(e as NodeJS.ErrnoException).code})`;
          break;
        }
      }
    }
    if (r.exitCode === 0 && !line.startsWith('!') && !fsProblem) {
      add({ id: 'remote.writable', check: 'remote writable', status: 'ok', detail: `a dry-run push of main to ${probeRef} was accepted (nothing was pushed)` });
    } else {
      const why = firstLine(r.stderr.replace(/^(fatal|error|remote): /gm, '')) || line || `git exited ${r.exitCode}`;
      const denied = /permission denied|authentication failed|access denied|403|401|could not read Username|publickey|\[remote rejected\]/i.test(r.stderr + line);
      add({
        id: 'remote.writable',
        check: 'remote writable',
        status: 'fail',
        detail: fsProblem ?? `dry-run push refused: ${why}`,
        fix: fsProblem
          ? `give this user write access to ${path} (or run buildcoord as the repository's owner)`
          : denied
            ? 'the remote refuses pushes from this host: check the ssh deploy key or token has write access to the repository'
            : 'check the URL, the network and that the git server accepts pushes (receive-pack enabled)',
      });
    }
  }

  // ---------------------------------------------------------------- identity, clone, lock
  if (!lockFree) {
    add({ id: 'git.identity', check: 'git identity', status: 'skip', detail: 'the local lock is held (the identity is read from the store under it)' });
  } else {
    try {
      const id = (await store.internals()).identity;
      const who = `${id.name} <${id.email}>`;
      add(
        opts.builder
          ? { id: 'git.identity', check: 'git identity', status: 'ok', detail: `commits are made as ${who} (set by buildcoord, not by git config)` }
          : { id: 'git.identity', check: 'git identity', status: 'warn', detail: `no builder name configured: commits are made as ${who}`, fix: 'set "builder" in the config file (or --builder / BUILDCOORD_BUILDER)' },
      );
    } catch (e) {
      add({ id: 'git.identity', check: 'git identity', status: 'skip', detail: `the private clone could not be opened: ${(e as Error).message.split('\n')[0]}` });
    }
  }

  const cloneExists = !!(await stat(join(cloneDir, 'HEAD')).catch(() => null));
  if (!cloneExists) {
    add({ id: 'clone', check: 'private clone', status: 'fail', detail: `${cloneDir} does not exist and could not be created`, fix: `check that ${dirname(cloneDir)} is writable (BUILDCOORD_HOME: ${opts.home})` });
  } else {
    const t = Date.now();
    const fsck = await exec('git', ['--git-dir', cloneDir, 'fsck', '--connectivity-only', '--no-progress'], undefined, 120_000);
    if (fsck.exitCode === 0) {
      add({ id: 'clone', check: 'private clone', status: 'ok', detail: `${cloneDir}: bare, connectivity ok (git fsck ${Date.now() - t} ms)` });
    } else {
      add({
        id: 'clone',
        check: 'private clone',
        status: 'fail',
        detail: `${cloneDir}: git fsck --connectivity-only failed: ${firstLine(String(fsck.stderr)) || fsck.shortMessage}`,
        fix: `stop the agent, remove ${cloneDir} (it is private to this host and holds nothing the remote does not) and start it again: the clone is re-created`,
      });
    }
  }

  rows.push(lockRow);

  // ---------------------------------------------------------------- tools
  const toolRows = await Promise.all(
    TOOLS.map(async (tool): Promise<CheckRow> => {
      const which = await exec('sh', ['-c', 'command -v "$1"', 'sh', tool.name]);
      const path = String(which.stdout).trim();
      if (which.exitCode !== 0 || !path) {
        return { id: `tool.${tool.name}`, check: tool.name, status: 'fail', detail: `not installed (needed for ${tool.for})`, fix: `apt-get install ${tool.pkg} (scripts/install-deps.sh installs everything)` };
      }
      let version = '';
      if (tool.args) {
        const r = await exec(path, tool.args);
        version = firstLine(String(r.stdout)) || firstLine(String(r.stderr));
        if (r.exitCode !== 0 && !version) version = `(${tool.name} ${tool.args.join(' ')} failed: ${r.shortMessage})`;
      } else {
        const r = await exec('dpkg-query', ['-W', '-f', '${Version}', tool.pkg]);
        version = r.exitCode === 0 && String(r.stdout).trim() ? `${tool.pkg} ${String(r.stdout).trim()}` : 'installed';
      }
      return { id: `tool.${tool.name}`, check: tool.name, status: 'ok', detail: `${version} (${path})`, data: { path, version } };
    }),
  );
  rows.push(...toolRows);

  // ---------------------------------------------------------------- artifacts directory
  const artifacts = resolve(opts.artifactsDir ?? opts.config.artifacts_dir ?? DEFAULT_ARTIFACTS_DIR);
  rows.push(await checkArtifacts(artifacts));

  // ---------------------------------------------------------------- repository size and growth
  if (cloneExists) {
    const r = await exec('git', ['--git-dir', cloneDir, 'count-objects', '-v']);
    const kv = Object.fromEntries(
      String(r.stdout)
        .split('\n')
        .map((l) => l.split(':').map((s) => s.trim()))
        .filter((p) => p.length === 2)
        .map(([k, v]) => [k!, Number(v)]),
    ) as Record<string, number>;
    const packed = (kv['size-pack'] ?? 0) * 1024;
    const loose = (kv.size ?? 0) * 1024;
    const total = packed + loose;
    const detail = `${formatBytes(total)} in the private clone (${formatBytes(packed)} in ${kv.packs ?? 0} pack(s), ${formatBytes(loose)} in ${kv.count ?? 0} loose objects)`;
    add(
      total > BIG_REPO_BYTES
        ? { id: 'repo.size', check: 'repository size', status: 'warn', detail, fix: 'main should stay small: look for big files committed by hand (git log --stat) and whether logs are being capped', data: { bytes: total } }
        : { id: 'repo.size', check: 'repository size', status: 'ok', detail, data: { bytes: total } },
    );
  } else {
    add({ id: 'repo.size', check: 'repository size', status: 'skip', detail: 'no private clone' });
  }

  const maxPerDay = opts.maxCommitsPerDay ?? DEFAULT_MAX_COMMITS_PER_DAY;
  const mainRef = cloneExists ? await readRef(cloneDir, 'refs/remotes/origin/main') : null;
  if (!mainRef) {
    add({ id: 'main.rate', check: 'main commits/day', status: 'skip', detail: 'main was not fetched' });
  } else {
    const now = clock().getTime();
    const since = Math.floor(now / 1000) - 7 * 86400;
    const r = await exec('git', ['--git-dir', cloneDir, 'log', `--since=@${since}`, '--format=%ct', 'refs/remotes/origin/main'], undefined, 60_000);
    const times = String(r.stdout).split('\n').filter(Boolean).map(Number);
    const perDay = new Map<string, number>();
    for (const t of times) {
      const day = new Date(t * 1000).toISOString().slice(0, 10);
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
    }
    const oldest = times.length ? Math.min(...times) : now / 1000;
    const days = Math.max(1, Math.min(7, (now / 1000 - oldest) / 86400));
    const rate = Math.round((times.length / days) * 10) / 10;
    const busiest = [...perDay.entries()].sort((a, b) => b[1] - a[1])[0];
    const detail = `${times.length} commit(s) on main in the last ${days >= 7 ? '7 days' : `${Math.round(days * 10) / 10} day(s)`}: ${rate}/day${busiest ? `, busiest ${busiest[0]} with ${busiest[1]}` : ''}`;
    add(
      rate > maxPerDay
        ? {
            id: 'main.rate',
            check: 'main commits/day',
            status: 'warn',
            detail: `${detail} (above ${maxPerDay}/day)`,
            fix: 'main should only record jobs, messages and locks (a job costs 3 commits): a builder committing housekeeping to main is misconfigured (heartbeats belong on heartbeat/<builder>); look at `git log --format=%s origin/main | sort | uniq -c | sort -rn | head`',
            data: { commits: times.length, per_day: rate },
          }
        : { id: 'main.rate', check: 'main commits/day', status: 'ok', detail, data: { commits: times.length, per_day: rate } },
    );
  }

  // ---------------------------------------------------------------- distcc
  await checkDistcc(opts, env, runner, add);

  const counts: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of rows) counts[r.status]++;
  return {
    ok: counts.fail === 0 && (!opts.strict || counts.warn === 0),
    builder: opts.builder,
    remote: store.remote,
    checks: rows,
    counts,
  };
}

async function checkArtifacts(dir: string): Promise<CheckRow> {
  const base = { id: 'artifacts', check: 'artifacts directory' };
  let existing = dir;
  while (!(await stat(existing).catch(() => null))) {
    const up = dirname(existing);
    if (up === existing) break;
    existing = up;
  }
  const exists = existing === dir;
  if (!(await stat(existing).catch(() => null))?.isDirectory()) {
    return {
      ...base,
      status: 'fail',
      detail: `${exists ? dir : `${dir} cannot be created: ${existing}`} is not a directory`,
      fix: `point "artifacts_dir" in the config file (--artifacts-dir) at a directory this user can write`,
    };
  }
  try {
    if (exists) {
      const probe = join(dir, `.buildcoord-doctor-${randomBytes(4).toString('hex')}`);
      await writeFile(probe, 'probe\n');
      await unlink(probe);
    } else {
      await access(existing, constants.W_OK);
    }
  } catch (e) {
    return {
      ...base,
      status: 'fail',
      detail: `${exists ? dir : `${dir} does not exist and ${existing}`} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      fix: `create ${dir} writable by this user, or set "artifacts_dir" in the config file (--artifacts-dir)`,
    };
  }
  let free = '';
  let freeBytes: number | null = null;
  try {
    const fs = await statfs(existing);
    freeBytes = fs.bavail * fs.bsize;
    free = `${formatBytes(freeBytes)} free`;
  } catch {
    free = 'free space unknown';
  }
  const detail = `${dir}${exists ? '' : ` (does not exist yet; ${existing} is writable)`}: writable, ${free}`;
  if (freeBytes !== null && freeBytes < LOW_SPACE_BYTES) {
    return { ...base, status: 'warn', detail, fix: `free space on the file system of ${existing}, or point "artifacts_dir" elsewhere`, data: { dir, free_bytes: freeBytes } };
  }
  return { ...base, status: 'ok', detail, data: { dir, free_bytes: freeBytes } };
}

async function checkDistcc(opts: DoctorOptions, env: NodeJS.ProcessEnv, runner: ProcessRunner, add: (r: CheckRow) => CheckRow): Promise<void> {
  const spec = (opts.distccHosts ?? '').trim();
  if (!spec) {
    add({ id: 'distcc.hosts', check: 'distcc hosts', status: 'skip', detail: 'none configured (distcc_hosts in the config file, --distcc-hosts or BUILDCOORD_DISTCC_HOSTS): builds compile locally' });
    return;
  }
  let hosts: HostSpec[];
  try {
    hosts = parseDistccHosts(spec);
  } catch (e) {
    add({ id: 'distcc.hosts', check: 'distcc hosts', status: 'fail', detail: (e as Error).message, fix: 'fix distcc_hosts: HOST[:PORT][/LIMIT][,lzo][,cpp] separated by spaces' });
    return;
  }
  const tcp = hosts.filter((h) => h.kind === 'tcp');
  const other = hosts.filter((h) => h.kind === 'ssh' || h.kind === 'zeroconf');
  add({
    id: 'distcc.hosts',
    check: 'distcc hosts',
    status: tcp.length ? 'ok' : 'skip',
    detail: `${spec}${tcp.length ? '' : ': no TCP host to check'}${other.length ? ` (not checked: ${other.map((h) => h.raw).join(' ')})` : ''}`,
  });
  if (!tcp.length) return;

  // Reachability first (quick), then one compile on each host that answers;
  // the rows come out host by host.
  const reach = await Promise.all(tcp.map(async (h) => ({ h, p: await probeTcp(h.host!, h.port!, 1500) })));
  const answering = reach.filter((x) => x.p.ok).map((x) => x.h);
  const work = await mkdtemp(join(tmpdir(), 'buildcoord-doctor-'));
  try {
    const smoke = answering.length ? await runSmoketest(answering, work, join(work, 'smoketest.log'), runner, { env, timeoutMs: 60_000 }) : null;
    for (const { h, p } of reach) {
      const name = `${h.host}:${h.port}`;
      if (!p.ok) {
        add({
          id: `distcc.${name}.port`,
          check: `distcc ${name}`,
          status: 'fail',
          detail: `does not answer (${p.why})`,
          fix: `start distccd on ${h.host} (listening on ${h.port}, --allow this builder's address), or remove ${h.raw} from distcc_hosts`,
        });
        add({ id: `distcc.${name}.compiler`, check: `distcc ${name} compiler`, status: 'skip', detail: 'the host does not answer' });
        continue;
      }
      add({ id: `distcc.${name}.port`, check: `distcc ${name}`, status: 'ok', detail: 'accepts connections' });
      const res = smoke?.hosts.find((x) => x.host === h.raw);
      if (!smoke || !res) continue;
      add(
        res.ok
          ? {
              id: `distcc.${name}.compiler`,
              check: `distcc ${name} compiler`,
              status: 'ok',
              detail: `${res.compiler_version} for ${res.target}, the same as this builder's; ${res.reason}`,
              data: { compiler_version: res.compiler_version, target: res.target },
            }
          : {
              id: `distcc.${name}.compiler`,
              check: `distcc ${name} compiler`,
              status: 'fail',
              detail: res.reason,
              fix: res.compiler_version
                ? `install the same compiler on ${h.host} as on this builder (${smoke.local.compiler_version ?? 'unknown'}, ${smoke.local.dumpmachine ?? smoke.local.target ?? '?'}), or remove ${h.raw} from distcc_hosts: objects from different compilers must not be mixed`
                : `look at distccd's log on ${h.host} (is ${smoke.local.dumpmachine ?? 'the'}-gcc installed there and listed in /usr/lib/distcc? is this builder in its --allow?)`,
              data: { compiler_version: res.compiler_version, target: res.target, local: smoke.local },
            },
      );
    }

    // ---------------------------------------------------------------- pump
    const cpp = answering.filter((h) => h.cpp);
    if (!hosts.some((h) => h.cpp)) {
      add({ id: 'pump', check: 'pump include server', status: 'skip', detail: 'no host has ,cpp: pump mode is not asked for' });
      return;
    }
    if (!cpp.length) {
      add({ id: 'pump', check: 'pump include server', status: 'skip', detail: 'no ,cpp host answers' });
      return;
    }
    const managed = await pumpInstallInfo(opts.home);
    const fromPath = (await execa('sh', ['-c', 'command -v distcc-pump', 'sh'], { env, extendEnv: false, reject: false })).stdout.trim() || null;
    const pump = opts.config.distcc_pump ?? managed?.pump ?? fromPath;
    const which = opts.config.distcc_pump ? 'configured distcc_pump' : managed ? `buildcoord's restored include server (${managed.dir})` : "the distribution's include server";
    if (!pump) {
      add({ id: 'pump', check: 'pump include server', status: 'fail', detail: 'hosts ask for pump mode (,cpp) but distcc-pump is not installed', fix: 'apt-get install distcc-pump' });
      return;
    }
    const probe = await pumpProbe({ pump, hosts: hostsValue(cpp), workDir: work, logFile: join(work, 'pump.log'), runner, env });
    add(
      probe.ok
        ? { id: 'pump', check: 'pump include server', status: 'ok', detail: `${which}: ${probe.reason}`, data: { pump } }
        : {
            id: 'pump',
            check: 'pump include server',
            status: 'fail',
            detail: `${which}: ${probe.reason}`,
            fix: managed
              ? `the restored include server does not serve: run \`buildcoord pump restore\` again and read its log (${opts.home}/pump/restore-*.log)`
              : 'run `buildcoord pump restore` (it rebuilds the include server for this Python from the distcc source named by "distcc_source" in the config file; scripts/get-distcc-source.sh DIR fetches it)',
            data: { pump, include_server_error: probe.includeServerError, fallbacks: probe.fallbacks },
          },
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
