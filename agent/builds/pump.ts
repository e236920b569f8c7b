// distcc pump mode that really pumps: the `pump-restore` job type and
// `buildcoord pump restore`, the pump probe doctor uses, and which
// distcc-pump builds should run.
//
// Debian 12's distcc 3.4 include server crashes on its first request under
// Python 3.10+ (SystemError: PY_SSIZE_T_CLEAN macro must be defined for '#'
// formats; distcc upstream issue 454) and distcc then preprocesses every file
// locally and still exits 0. The restore rebuilds the include server and its
// C extension from a distcc source tree with the repository's patches
// (patches/distcc/), for /usr/bin/python3, and installs it where buildcoord
// manages it:
//
//   $BUILDCOORD_HOME/pump/<timestamp>/include_server/   the rebuilt include server (.py + .so)
//   $BUILDCOORD_HOME/pump/<timestamp>/bin/distcc-pump   the distribution's distcc-pump with its
//                                                       include_server= and PYTHON= lines pointed here
//   $BUILDCOORD_HOME/pump/current -> <timestamp>        switched atomically, only after verification
//   $BUILDCOORD_HOME/pump/restore-<timestamp>.log       everything every step printed
//
// The distribution's own files are never written. A restore that fails at
// any step leaves `current` (the previous working install) as it was and
// names the step in its error.

import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { accessSync, closeSync, constants, openSync, readFileSync, realpathSync } from 'node:fs';
import { appendFile, chmod, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { OperationError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { LocalLock } from '../store/locallock.js';
import { analyzeClientLog, includeServerError } from './distcc.js';
import { redactText, runProcess, type ProcessRunner, type RunResult } from './runner.js';

export const SYSTEM_PYTHON = '/usr/bin/python3';

export const RESTORE_STEPS = ['fetch source', 'unpack', 'patch', 'autogen', 'configure', 'make include-server', 'install', 'verify'] as const;
export type RestoreStep = (typeof RESTORE_STEPS)[number];

/** A restore that failed: which step, and where the whole log is. */
export class PumpRestoreError extends OperationError {
  constructor(
    readonly step: RestoreStep,
    readonly why: string,
    readonly logFile: string,
    readonly current: string | null,
  ) {
    super(
      `pump restore failed at step "${step}": ${why} (log: ${logFile}); ` +
        (current ? `the previous install ${current} stays in use` : 'no managed install existed before, pump builds keep using the distribution\'s distcc-pump'),
    );
  }
}

export function pumpRoot(home: string): string {
  return join(home, 'pump');
}

function which(name: string, env: NodeJS.ProcessEnv): string | null {
  const candidates = name.includes('/') ? [name] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * The managed distcc-pump (a copy whose include server is the rebuilt one) to
 * run pump builds with, or null when no verified install exists: then use the
 * configured or the distribution's distcc-pump. The path is resolved through
 * `current` now, so a build keeps one install for its whole run even if a
 * restore switches `current` meanwhile.
 */
export function pumpCommand(home: string): string | null {
  try {
    const dir = realpathSync(join(pumpRoot(home), 'current'));
    const cmd = join(dir, 'bin', 'distcc-pump');
    accessSync(cmd, constants.X_OK);
    return cmd;
  } catch {
    return null;
  }
}

function currentInstall(home: string): string | null {
  try {
    return realpathSync(join(pumpRoot(home), 'current'));
  } catch {
    return null;
  }
}

/** 20261123T101500Z. */
function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

const INSTALL_RE = /^\d{8}T\d{6}Z(-\d+)?$/;

// ---------------------------------------------------------------- distccd on loopback

export interface LoopbackDistccd {
  port: number;
  pid: number;
  /** What distccd logged so far. */
  log(): string;
  /** SIGTERM to distccd (it takes its workers down), SIGKILL to its process group after 3 s. Safe to call twice. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no free port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(false));
  });
}

/**
 * A distccd on 127.0.0.1 with a free port, only for 127.0.0.1, in its own
 * process group, logging to logFile through stderr (as root distccd drops to
 * its own user, which could not open a file in a private directory). env
 * decides the compilers it finds (distccd runs the compiler by name on its
 * PATH, among those Debian's /usr/lib/distcc whitelist names).
 */
export async function startLoopbackDistccd(opts: { logFile: string; env?: NodeJS.ProcessEnv; jobs?: number; distccd?: string }): Promise<LoopbackDistccd> {
  const env = opts.env ?? process.env;
  const bin = opts.distccd ?? which('distccd', env);
  if (!bin) throw new Error('distccd is not installed (Debian package distcc)');
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const fd = openSync(opts.logFile, 'a');
    const child = spawn(
      bin,
      ['--daemon', '--no-detach', '--listen', '127.0.0.1', '--port', String(port), '--allow', '127.0.0.1', '--log-stderr', '--log-level=info', '--jobs', String(opts.jobs ?? 2)],
      { detached: true, stdio: ['ignore', fd, fd], env },
    );
    closeSync(fd);
    let exited = false;
    const exit = new Promise<void>((r) => {
      child.once('exit', () => {
        exited = true;
        r();
      });
      child.once('error', () => {
        exited = true;
        r();
      });
    });
    const pid = child.pid ?? -1;
    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        if (exited || pid < 0) return;
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        const t = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL'); // the group made for it, nothing else
          } catch {
            /* gone */
          }
        }, 3000);
        await exit;
        clearTimeout(t);
      })());
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline && !(await canConnect(port))) await new Promise((r) => setTimeout(r, 10));
    const log = () => {
      try {
        return readFileSync(opts.logFile, 'utf8');
      } catch {
        return '';
      }
    };
    if (!exited && (await canConnect(port))) return { port, pid, log, stop };
    await stop();
    if (!/already in use|Address in use/i.test(log())) throw new Error(`distccd did not start: ${log().trim().split('\n').slice(-3).join(' / ') || '(no output)'}`);
  }
  throw new Error('distccd: no free port on 127.0.0.1 in 5 tries');
}

// ---------------------------------------------------------------- the pump probe

export interface PumpProbeResult {
  ok: boolean;
  /** For a person: why it passed or failed. */
  reason: string;
  exitCode: number | null;
  remote: number;
  /** Files the include server did not serve ("failed to get includes ..., preprocessing locally"). */
  fallbacks: number;
  localCpp: number;
  includeServerError: string | null;
}

const PROBE_H = '#define BUILDCOORD_PUMP_PROBE 42\n';
const PROBE_C = '#include <stdio.h>\n#include "probe.h"\nint main(void) { printf("%d\\n", BUILDCOORD_PUMP_PROBE); return 0; }\n';

/**
 * One tiny compile through distcc-pump (pump: its path) against hosts with
 * ,cpp: passes only if it ran remotely with the include server serving it,
 * i.e. without distcc's silent "preprocessing locally" fallback. Output goes
 * to logFile; the probe's files live in a new directory under workDir,
 * removed afterwards.
 */
export async function pumpProbe(opts: {
  pump: string;
  /** DISTCC_HOSTS; hosts without ,cpp cannot take pump jobs. */
  hosts: string;
  workDir: string;
  logFile: string;
  runner?: ProcessRunner;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Applied to every line written to logFile and to the output the reason quotes. */
  redact?: (line: string) => string;
}): Promise<PumpProbeResult> {
  const runner = opts.runner ?? runProcess;
  const redact = opts.redact ?? ((l: string) => l);
  await mkdir(opts.workDir, { recursive: true });
  const dir = await mkdtemp(join(opts.workDir, 'pump-probe-'));
  try {
    await writeFile(join(dir, 'probe.c'), PROBE_C);
    await writeFile(join(dir, 'probe.h'), PROBE_H);
    await mkdir(join(dir, 'distcc-dir'));
    const env: Record<string, string | undefined> = { ...(opts.env ?? process.env) };
    for (const k of Object.keys(env)) if (k.startsWith('DISTCC_') || k.startsWith('INCLUDE_SERVER_')) delete env[k];
    const clientLog = join(dir, 'distcc-client.log');
    const out = join(dir, 'pump.out');
    const r: RunResult = await runner({
      command: opts.pump,
      args: ['distcc', 'gcc', '-c', 'probe.c', '-o', 'probe.o'],
      cwd: dir,
      env: { ...env, DISTCC_HOSTS: opts.hosts, DISTCC_VERBOSE: '1', DISTCC_LOG: clientLog, DISTCC_DIR: join(dir, 'distcc-dir'), DISTCC_BACKOFF_PERIOD: '0' },
      logFile: out,
      timeoutMs: opts.timeoutMs ?? 90_000,
      signal: opts.signal,
      graceMs: 3000,
      redact,
    });
    const output = await readFile(out, 'utf8').catch(() => '');
    const client = await readFile(clientLog, 'utf8').catch(() => '');
    // distcc writes its client log itself, past the runner's redactor.
    await appendFile(opts.logFile, redactText(`--- ${opts.pump} distcc gcc -c probe.c (DISTCC_HOSTS=${opts.hosts}): ${r.summary}\n${output}--- distcc client log\n${client}`, redact));
    const stats = analyzeClientLog(client);
    const err = includeServerError(output);
    const base = { exitCode: r.exitCode, remote: stats.remote, fallbacks: stats.pumpFallbacks, localCpp: stats.localCpp, includeServerError: err };
    const fail = (reason: string): PumpProbeResult => ({ ok: false, reason, ...base });
    if (r.exitCode !== 0) return fail(`the pump compile ${r.summary}${err ? ` (${err})` : ''}: ${output.trim().split('\n').slice(-2).join(' / ')}`);
    if (stats.pumpFallbacks > 0 || stats.localCpp > 0) {
      return fail(`the include server did not serve the compile${err ? ` (${err})` : ''}: distcc printed "failed to get includes from include server, preprocessing locally" and fell back to plain distcc`);
    }
    if (stats.remote === 0) return fail(`the pump compile did not run remotely (${stats.local} local compile(s) in distcc's log)`);
    if (!(await stat(join(dir, 'probe.o')).catch(() => null))) return fail('distcc reported success but left no object file');
    return { ok: true, reason: `the include server served a pump compile that ran remotely (${Object.keys(stats.byHost).join(', ')}), no local preprocessing`, ...base };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- restore

export interface RestoreOptions {
  /** BUILDCOORD_HOME. */
  home: string;
  /** A distcc source directory or tarball (config "distcc_source"). */
  source?: string | null;
  /** Directory of *.patch files applied in name order with patch -p1 (config "distcc_patches"; default the package's patches/distcc/). */
  patchesDir?: string | null;
  /** The Python the include server runs under (default /usr/bin/python3, what distcc-pump uses). */
  python?: string;
  /** The distribution's distcc-pump to copy (default: distcc-pump on PATH). */
  distccPump?: string;
  runner?: ProcessRunner;
  env?: NodeJS.ProcessEnv;
  clock?: () => Date;
  signal?: AbortSignal;
  /** Progress, one line per step (the CLI prints them; the log has everything). */
  progress?: (line: string) => void;
  /** Installs kept besides `current` (default 2). */
  keep?: number;
  /** Also append the whole restore log here at the end (a job's own log). */
  alsoLog?: string;
  /** A job's redactor: every line of the restore log, and of its copy in alsoLog, goes through it. */
  redact?: (line: string) => string;
  /** Per step (default 10 minutes). */
  stepTimeoutMs?: number;
}

export interface RestoreResult {
  /** The new install (what `current` now points at). */
  dir: string;
  /** Its distcc-pump: what pumpCommand(home) returns from now on. */
  pump: string;
  log: string;
  python: string;
  python_version: string;
  source: string;
  patches: Array<{ name: string; sha256: string; result: 'applied' | 'already applied' }>;
  /** The install `current` pointed at before, if any. */
  previous: string | null;
  verify: PumpProbeResult;
  steps: Array<{ step: RestoreStep; seconds: number }>;
  duration_seconds: number;
}

function defaultPatchesDir(): string {
  return join(packageRoot(), 'patches', 'distcc');
}

function cleanEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env, LC_ALL: 'C' };
  // A build for the system python must not pick up somebody's virtualenv or pyenv settings.
  for (const k of ['PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PYTHONUSERBASE', 'VIRTUAL_ENV', 'PYENV_VERSION', 'CONFIG_SITE', 'MAKEFLAGS', 'MFLAGS']) delete out[k];
  for (const k of Object.keys(out)) if (k.startsWith('DISTCC_') || k.startsWith('INCLUDE_SERVER_')) delete out[k];
  return out;
}

/**
 * Rebuilds the include server from opts.source with the patches, installs it
 * under $home/pump/<timestamp>/, proves pump mode works with it (a real pump
 * compile against a distccd started on 127.0.0.1 for the check, with no
 * fallback), and only then switches $home/pump/current to it. Throws
 * PumpRestoreError naming the step on any failure; `current` is then untouched.
 */
export async function restorePump(opts: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const clock = opts.clock ?? (() => new Date());
  const runner = opts.runner ?? runProcess;
  const baseEnv = cleanEnv(opts.env ?? process.env);
  const python = opts.python ?? SYSTEM_PYTHON;
  const redact = opts.redact ?? ((l: string) => l);
  const root = pumpRoot(opts.home);
  await mkdir(root, { recursive: true });
  const lock = new LocalLock(join(root, '.restore'), { waitMs: 1000, staleMs: 60_000 });
  try {
    return await lock.with(() => restoreLocked());
  } catch (e) {
    if (e instanceof OperationError && !(e instanceof PumpRestoreError) && /local lock/.test(e.message)) {
      throw new OperationError(`another pump restore is running on this host (${join(root, '.restore.lock')}); wait for it, or remove the lock if none is`);
    }
    throw e;
  }

  async function restoreLocked(): Promise<RestoreResult> {
    let name = stamp(clock());
    for (let i = 1; await stat(join(root, name)).catch(() => null); i++) name = `${stamp(clock())}-${i}`;
    const log = join(root, `restore-${name}.log`);
    const work = join(root, `build-${name}`);
    const target = join(root, name);
    const previous = currentInstall(opts.home);
    const steps: RestoreResult['steps'] = [];
    let step: RestoreStep = 'fetch source';
    let begun = false;
    let stepStarted = Date.now();
    // Notes quote program output (a failed command's last lines, a stack): redacted like the output itself.
    const note = async (line: string) => {
      await appendFile(log, redactText(`[buildcoord] ${line}\n`, redact));
    };
    const begin = async (s: RestoreStep, what: string) => {
      if (begun) steps.push({ step, seconds: Math.round((Date.now() - stepStarted) / 100) / 10 });
      begun = true;
      step = s;
      stepStarted = Date.now();
      await note(`== ${s}: ${what}`);
      opts.progress?.(`${s}: ${what}`);
    };
    const fail = (why: string): never => {
      throw new PumpRestoreError(step, why, log, previous);
    };
    const run = async (command: string, args: string[], cwd: string, extra: Record<string, string | undefined> = {}, timeoutMs = opts.stepTimeoutMs ?? 600_000) => {
      await note(`$ ${[command, ...args].join(' ')}  (in ${cwd})`);
      const r = await runner({ command, args, cwd, env: { ...baseEnv, ...extra }, logFile: log, timeoutMs, signal: opts.signal, graceMs: 3000, redact });
      await note(r.summary);
      if (r.aborted) fail(`stopped (${r.summary})`);
      return r;
    };
    const must = async (command: string, args: string[], cwd: string, extra: Record<string, string | undefined> = {}) => {
      const r = await run(command, args, cwd, extra);
      if (r.exitCode !== 0 || r.timedOut) fail(`${basename(command)} ${args.join(' ')} ${r.summary}`.replace(/\s+/g, ' '));
      return r;
    };
    const tool = (name: string, pkg: string) => which(name, baseEnv) ?? fail(`${name} is not installed (Debian package ${pkg})`);
    /** Runs a short command and returns its output (also logged). */
    const output = async (command: string, args: string[], cwd: string): Promise<{ r: RunResult; text: string }> => {
      const tmp = join(work, `.out-${randomBytes(4).toString('hex')}`);
      const r = await runner({ command, args, cwd, env: baseEnv, logFile: tmp, timeoutMs: 60_000, signal: opts.signal, graceMs: 2000, redact });
      const text = await readFile(tmp, 'utf8').catch(() => '');
      await rm(tmp, { force: true });
      await note(`$ ${[command, ...args].join(' ')}: ${r.summary}\n${text.trimEnd()}`);
      return { r, text };
    };

    await writeFile(log, `buildcoord pump restore ${name} at ${clock().toISOString()}\n`);
    await note(`home ${opts.home}; current install: ${previous ?? 'none'}; python ${python}`);
    let installed = false;
    let switched = false;
    try {
      await mkdir(work, { recursive: true });

      // ---- fetch source
      const source = opts.source ? resolve(opts.source) : null;
      await begin('fetch source', source ?? '(none configured)');
      if (!source) {
        fail('no distcc source: set "distcc_source" in the config file (or pass --source) to a distcc 3.4 source directory or tarball; scripts/get-distcc-source.sh DIR downloads the tarball from Debian\'s archive');
      }
      const st = await stat(source!).catch((e: NodeJS.ErrnoException) => fail(`${source}: ${e.code ?? e.message}`));
      let tree: string;
      if (st.isDirectory()) {
        if (!(await stat(join(source!, 'include_server', 'setup.py')).catch(() => null))) fail(`${source} is not a distcc source tree (no include_server/setup.py)`);
        tree = join(work, 'src');
        // A copy: the configured tree is never patched or built in.
        await cp(source!, tree, { recursive: true, filter: (p) => !/\/\.git$/.test(p) }).catch((e: Error) => fail(`copying ${source}: ${e.message}`));
        await begin('unpack', 'a source directory: copied, nothing to unpack');
      } else {
        // ---- unpack
        await begin('unpack', basename(source!));
        const into = join(work, 'unpack');
        await mkdir(into);
        await must(tool('tar', 'tar'), ['-xf', source!, '-C', into], work);
        const entries = (await readdir(into, { withFileTypes: true })).filter((e) => e.isDirectory());
        const found = [];
        for (const e of entries) if (await stat(join(into, e.name, 'include_server', 'setup.py')).catch(() => null)) found.push(join(into, e.name));
        if (await stat(join(into, 'include_server', 'setup.py')).catch(() => null)) found.push(into);
        if (found.length !== 1) fail(`${basename(source!)} does not hold one distcc source tree (found ${found.length} with include_server/setup.py)`);
        tree = found[0]!;
      }

      // ---- patch
      const patchesDir = resolve(opts.patchesDir ?? defaultPatchesDir());
      await begin('patch', patchesDir);
      const names = (await readdir(patchesDir).catch((e: NodeJS.ErrnoException) => fail(`${patchesDir}: ${e.code ?? e.message}`)))
        .filter((n) => n.endsWith('.patch'))
        .sort();
      if (names.length === 0) await note(`no *.patch in ${patchesDir}: building the source as it is`);
      const patchBin = names.length ? tool('patch', 'patch') : '';
      const patches: RestoreResult['patches'] = [];
      for (const n of names) {
        const file = join(patchesDir, n);
        const sha256 = createHash('sha256').update(await readFile(file)).digest('hex');
        const dry = await run(patchBin, ['-p1', '--forward', '--batch', '--dry-run', '-i', file], tree);
        if (dry.exitCode === 0) {
          await must(patchBin, ['-p1', '--forward', '--batch', '-i', file], tree);
          patches.push({ name: n, sha256, result: 'applied' });
          continue;
        }
        // A source that already has the fix (a newer distcc) is fine; anything else is not.
        const reverse = await run(patchBin, ['-p1', '-R', '--batch', '--dry-run', '-i', file], tree);
        if (reverse.exitCode === 0) {
          await note(`${n}: already applied in this source; skipped`);
          patches.push({ name: n, sha256, result: 'already applied' });
          continue;
        }
        fail(`${n} does not apply to this source (patch --dry-run ${dry.summary}; see the log for the rejected hunks)`);
      }

      // ---- autogen
      const hasConfigure = !!(await stat(join(tree!, 'configure')).catch(() => null));
      await begin('autogen', hasConfigure ? 'configure exists, skipped' : './autogen.sh');
      if (!hasConfigure) {
        tool('autoconf', 'autoconf');
        tool('aclocal', 'automake');
        if (!(await stat(join(tree!, 'autogen.sh')).catch(() => null))) fail('the source has neither configure nor autogen.sh');
        await must('/bin/sh', ['./autogen.sh'], tree!);
      }

      // ---- configure
      await begin('configure', `for ${python}`);
      if (!which(python, baseEnv)) fail(`${python} is not installed (Debian package python3)`);
      const info = await output(
        python,
        ['-c', 'import sys, sysconfig, os; print(sys.version.split()[0]); print(sysconfig.get_config_var("EXT_SUFFIX")); print(os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'],
        work,
      );
      const [pyVersion, extSuffix, hasHeaders] = info.text.trim().split('\n');
      if (info.r.exitCode !== 0 || !pyVersion || !extSuffix) fail(`${python} did not say its version: ${info.text.trim().slice(0, 200)}`);
      if (hasHeaders !== 'True') fail(`Python.h for ${python} ${pyVersion} is missing (Debian package python3-dev)`);
      const distutils = await output(python, ['-c', 'import distutils.core'], work);
      if (distutils.r.exitCode !== 0) fail(`${python} cannot import distutils, which distcc's include_server/setup.py needs (Debian package python3-distutils; Python 3.12+ has none: use setuptools' copy)`);
      tool('make', 'make');
      tool('gcc', 'gcc');
      await must('/bin/sh', ['./configure', '--disable-Werror', '--without-libiberty', '--without-avahi', `PYTHON=${python}`], tree!);

      // ---- make include-server
      await begin('make include-server', 'the include server and its C extension');
      await must('make', ['include-server'], tree!);
      const built = join(tree!, '_include_server');
      let libDir: string | null = null;
      for (const d of await readdir(built).catch(() => [] as string[])) {
        if (!d.startsWith('lib')) continue;
        const cand = join(built, d, 'include_server');
        const files = await readdir(cand).catch(() => [] as string[]);
        if (files.includes(`distcc_pump_c_extensions${extSuffix}`) && files.includes('include_server.py')) libDir = cand;
      }
      if (!libDir) fail(`make include-server left no include_server/distcc_pump_c_extensions${extSuffix} under ${built}`);

      // ---- install
      await begin('install', target);
      const distPump = opts.distccPump ?? which('distcc-pump', baseEnv) ?? which('pump', baseEnv);
      if (!distPump) fail('distcc-pump is not installed (Debian package distcc-pump): it is what gets copied');
      const distcc = which('distcc', baseEnv) ?? fail('distcc is not installed (Debian package distcc)');
      const script = await readFile(distPump!, 'utf8').catch((e: Error) => fail(`reading ${distPump}: ${e.message}`));
      const isLines = script.match(/^include_server=.*$/gm) ?? [];
      const pyLines = script.match(/^PYTHON=.*$/gm) ?? [];
      if (isLines.length !== 1 || pyLines.length !== 1) fail(`${distPump} does not look like distcc's pump script (expected one include_server= line and one PYTHON= line, found ${isLines.length} and ${pyLines.length})`);
      const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
      const pumpText = script
        .replace(/^include_server=.*$/m, `include_server=${quote(join(target, 'include_server', 'include_server.py'))}`)
        .replace(/^PYTHON=.*$/m, `PYTHON=${quote(python)}`)
        .replace(/^(#!.*\n)/, `$1# Copied from ${distPump} by buildcoord pump restore ${name}: include_server= and PYTHON= point at the rebuilt include server.\n`);
      const staging = join(root, `.${name}.partial`);
      await rm(staging, { recursive: true, force: true });
      await mkdir(join(staging, 'bin'), { recursive: true });
      await cp(libDir!, join(staging, 'include_server'), { recursive: true });
      await writeFile(join(staging, 'bin', 'distcc-pump'), pumpText);
      await chmod(join(staging, 'bin', 'distcc-pump'), 0o755);
      // distcc-pump runs the distcc (and lsdistcc) beside itself: the distribution's.
      await symlink(realpathSync(distcc!), join(staging, 'bin', 'distcc'));
      const lsdistcc = which('lsdistcc', baseEnv);
      if (lsdistcc) await symlink(realpathSync(lsdistcc), join(staging, 'bin', 'lsdistcc'));
      const manifest = {
        created_at: clock().toISOString(),
        python,
        python_version: pyVersion,
        ext_suffix: extSuffix,
        source,
        patches,
        copied_from: distPump,
        distcc: realpathSync(distcc!),
        log,
      };
      await writeFile(join(staging, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      await rename(staging, target);
      installed = true;
      await note(`installed ${target}`);

      // ---- verify
      await begin('verify', 'the extension loads; a real pump compile against a distccd on 127.0.0.1, with no fallback');
      const ext = await output(
        python,
        ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); import distcc_pump_c_extensions as e; ok = e.OsPathIsFile(sys.argv[2]) and not e.OsPathIsFile(sys.argv[1]); print("OsPathIsFile works" if ok else "OsPathIsFile answers wrongly"); sys.exit(0 if ok else 1)', join(target, 'include_server'), join(target, 'include_server', 'include_server.py')],
        work,
      );
      if (ext.r.exitCode !== 0) fail(`the rebuilt C extension does not work under ${python}: ${ext.text.trim().split('\n').pop() || ext.r.summary}`);
      const dlog = join(work, 'distccd.log');
      const daemon = await startLoopbackDistccd({ logFile: dlog, env: baseEnv as NodeJS.ProcessEnv }).catch((e: Error) => fail(`could not start a distccd for the check: ${e.message}`));
      let verify: PumpProbeResult;
      try {
        verify = await pumpProbe({
          pump: join(target, 'bin', 'distcc-pump'),
          hosts: `127.0.0.1:${daemon.port}/2,cpp,lzo`,
          workDir: work,
          logFile: log,
          runner,
          env: baseEnv as NodeJS.ProcessEnv,
          signal: opts.signal,
          redact,
        });
      } finally {
        await daemon.stop();
        await appendFile(log, redactText(`--- distccd (127.0.0.1:${daemon.port}) log\n${daemon.log()}`, redact));
      }
      if (!verify.ok) fail(verify.reason);
      await note(verify.reason);

      // ---- switch: only now does anything start using the new install.
      const tmpLink = join(root, `.current-${randomBytes(4).toString('hex')}`);
      await symlink(name, tmpLink);
      await rename(tmpLink, join(root, 'current'));
      switched = true;
      steps.push({ step, seconds: Math.round((Date.now() - stepStarted) / 100) / 10 });
      await note(`current -> ${name}${previous ? ` (was ${basename(previous)})` : ''}`);
      await prune(root, name, opts.keep ?? 2, note);
      const duration = Math.round((Date.now() - started) / 100) / 10;
      await note(`done in ${duration} s: pump builds use ${join(target, 'bin', 'distcc-pump')}`);
      return {
        dir: target,
        pump: join(target, 'bin', 'distcc-pump'),
        log,
        python,
        python_version: pyVersion!,
        source: source!,
        patches,
        previous,
        verify,
        steps,
        duration_seconds: duration,
      };
    } catch (e) {
      if (!(e instanceof PumpRestoreError)) {
        await note(`error at step "${step}": ${(e as Error).stack ?? e}`).catch(() => {});
        throw new PumpRestoreError(step, (e as Error).message, log, previous);
      }
      await note(`FAILED at step "${step}": ${e.why}`).catch(() => {});
      throw e;
    } finally {
      if (installed && !switched) await rm(target, { recursive: true, force: true }).catch(() => {});
      await rm(join(root, `.${name}.partial`), { recursive: true, force: true }).catch(() => {});
      await rm(work, { recursive: true, force: true }).catch(() => {});
      // The copy is what reaches the pushed job log: redacted here too, so that
      // nothing written into the restore log some other way gets past.
      if (opts.alsoLog) await appendFile(opts.alsoLog, redactText(await readFile(log, 'utf8').catch(() => ''), redact)).catch(() => {});
    }
  }
}

/** Keeps `current` and the `keep` newest other installs; older ones go. */
async function prune(root: string, current: string, keep: number, note: (l: string) => Promise<void>): Promise<void> {
  const installs = (await readdir(root)).filter((n) => INSTALL_RE.test(n) && n !== current).sort().reverse();
  for (const old of installs.slice(keep)) {
    await rm(join(root, old), { recursive: true, force: true });
    await note(`removed old install ${old}`);
  }
}

/** The managed install's manifest, for doctor and `pump status`. */
export async function pumpInstallInfo(home: string): Promise<{ dir: string; pump: string; manifest: Record<string, unknown> | null } | null> {
  const pump = pumpCommand(home);
  if (!pump) return null;
  const dir = dirname(dirname(pump));
  let manifest: Record<string, unknown> | null = null;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    /* an install without a manifest still works */
  }
  return { dir, pump, manifest };
}
