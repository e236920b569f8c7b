// Real temporary git repositories for tests, in the spirit of changesets'
// test helpers: git is never mocked, because the whole design rests on what
// real git does (a rejected non-fast-forward push is our compare-and-swap).
//
// Every test file that uses these helpers should end its setup with
//
//   import { after } from 'node:test';
//   after(cleanupAll);
//
// so temp dirs are removed and git daemons stopped even when a test fails.
// Set BUILDCOORD_TEST_KEEP_TMP=1 to keep the temp dirs for a post-mortem.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------- cleanup

type CleanupFn = () => void | Promise<void>;
const cleanups: CleanupFn[] = [];

/** Registers fn to run at the next cleanupAll(), newest first. */
export function onCleanup(fn: CleanupFn): void {
  cleanups.push(fn);
}

/**
 * Runs every registered cleanup, newest first (so a daemon stops before its
 * base dir is removed). All of them run even if some fail; the failures are
 * thrown together afterwards.
 */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} test cleanups failed`);
}

const keepTmp = process.env.BUILDCOORD_TEST_KEEP_TMP === '1';

/** A new empty directory under os.tmpdir(), removed by cleanupAll(). */
export async function tmpDir(prefix: string): Promise<string> {
  // realpath: on macOS os.tmpdir() is behind a symlink, and git reports real paths.
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), `bc-test-${prefix}`)));
  onCleanup(async () => {
    if (!keepTmp) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  return dir;
}

// ---------------------------------------------------------------- git

export const TEST_AUTHOR = { name: 'Test Person', email: 'test@buildcoord.invalid' } as const;

let homePromise: Promise<string> | undefined;

/** A HOME with a minimal .gitconfig, made once per process (again after cleanupAll). */
function testHome(): Promise<string> {
  homePromise ??= (async () => {
    const home = await tmpDir('home-');
    onCleanup(() => {
      homePromise = undefined;
    });
    await writeFile(
      path.join(home, '.gitconfig'),
      [
        '[init]',
        '\tdefaultBranch = main',
        '[user]',
        `\tname = ${TEST_AUTHOR.name}`,
        `\temail = ${TEST_AUTHOR.email}`,
        '[commit]',
        '\tgpgsign = false',
        '[advice]',
        '\tdetachedHead = false',
        '',
      ].join('\n'),
    );
    return home;
  })();
  return homePromise;
}

/**
 * The inherited environment minus anything that would point git or
 * buildcoord somewhere else. GIT_DIR, GIT_INDEX_FILE and friends are set when
 * the tests run from a git hook (a pre-commit `npm test`) and would make every
 * git call here act on the project's own repository.
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('GIT_') || key.startsWith('BUILDCOORD_')) continue;
    env[key] = value;
  }
  return env;
}

/**
 * Environment for git (and for programs under test that run git): a private
 * HOME and global config, no system config, a fixed identity, no prompts.
 */
export async function gitEnv(): Promise<Record<string, string>> {
  const home = await testHome();
  return {
    ...baseEnv(),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: path.join(home, '.gitconfig'),
    GIT_AUTHOR_NAME: TEST_AUTHOR.name,
    GIT_AUTHOR_EMAIL: TEST_AUTHOR.email,
    GIT_COMMITTER_NAME: TEST_AUTHOR.name,
    GIT_COMMITTER_EMAIL: TEST_AUTHOR.email,
    GIT_TERMINAL_PROMPT: '0',
  };
}

export interface GitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs git and returns its outcome whatever the exit code (e.g. to look at a rejected push). */
export async function tryGit(cwd: string, ...args: string[]): Promise<GitResult> {
  const result = await execa('git', args, {
    cwd,
    env: await gitEnv(),
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
    timeout: 60_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
}

/** Runs git in cwd; returns trimmed stdout, throws with git's stderr on failure. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const result = await tryGit(cwd, ...args);
  if (result.exitCode !== 0) {
    throw new Error(`git ${args.join(' ')} (in ${cwd}) exited ${result.exitCode}: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

/** An empty bare repository with main as its default branch. */
export async function makeBareRepo(opts: { name?: string; parent?: string } = {}): Promise<{
  dir: string;
  url: string;
}> {
  const parent = opts.parent ?? (await tmpDir('bare-'));
  const dir = path.join(parent, opts.name ?? 'coord.git');
  await git(parent, 'init', '--quiet', '--bare', '-b', 'main', dir);
  return { dir, url: `file://${dir}` };
}

/** A fresh working clone of url, as a person would have. */
export async function cloneWork(url: string): Promise<string> {
  const dir = await tmpDir('work-');
  await git(dir, 'clone', '--quiet', url, dir);
  return dir;
}

/** Files to write, by path relative to the repository root; null deletes the file. */
export type FileMap = Record<string, string | null>;

async function writeFiles(workDir: string, files: FileMap): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const full = path.resolve(workDir, rel);
    if (path.isAbsolute(rel) || !full.startsWith(workDir + path.sep)) {
      throw new Error(`test file path must stay inside the repository: ${rel}`);
    }
    if (content === null) {
      await rm(full, { force: true });
    } else {
      await mkdir(path.dirname(full), { recursive: true });
      await writeFile(full, content);
    }
  }
}

/**
 * Writes files in an existing clone, commits everything and pushes to main
 * (never forced: a rejected push throws). Returns the new commit's sha.
 */
export async function pushFiles(workDir: string, files: FileMap, message = 'test: update files'): Promise<string> {
  await writeFiles(workDir, files);
  await git(workDir, 'add', '--all');
  await git(workDir, 'commit', '--quiet', '--allow-empty', '-m', message);
  await git(workDir, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main');
  return git(workDir, 'rev-parse', 'HEAD');
}

/** Clones bareUrl, commits files and pushes them to main; returns the commit sha. */
export async function seedRepo(bareUrl: string, files: FileMap, message = 'test: seed repository'): Promise<string> {
  const work = await cloneWork(bareUrl);
  return pushFiles(work, files, message);
}

// ---------------------------------------------------------------- git daemon

export interface GitDaemon {
  port: number;
  pid: number;
  pidFile: string;
  /** git://127.0.0.1:PORT/<repoName>, repoName relative to the base dir. */
  url(repoName: string): string;
  /** SIGTERM, SIGKILL after 2 s, and wait for the exit. Safe to call twice. */
  stop(): Promise<void>;
}

/** A port on 127.0.0.1 the OS just handed out, closed again: free now, and nothing listens there. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from the OS'))));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let daemonCommand: Promise<[string, string[]]> | undefined;

/**
 * `git daemon` is not a builtin: the git wrapper forks git-daemon and waits,
 * so the PID we would hold is the wrapper's and a SIGKILL would orphan the
 * real daemon. Run the git-daemon program itself when it can be found.
 */
function gitDaemonCommand(): Promise<[string, string[]]> {
  daemonCommand ??= (async () => {
    const execPath = (await execa('git', ['--exec-path'], { reject: false, stdin: 'ignore' })).stdout.trim();
    const direct = path.join(execPath, 'git-daemon');
    try {
      accessSync(direct, fsConstants.X_OK);
      return [direct, []];
    } catch {
      return ['git', ['daemon']];
    }
  })();
  return daemonCommand;
}

const READY_TIMEOUT_MS = 5_000;
const PORT_TRIES = 5;

/**
 * Serves every repository under baseDir over git:// on 127.0.0.1, push
 * included. Stopped by cleanupAll() if the test does not stop it itself.
 */
export async function startGitDaemon(baseDir: string): Promise<GitDaemon> {
  const base = await realpath(baseDir);
  const runDir = await tmpDir('gitd-');
  const pidFile = path.join(runDir, 'git-daemon.pid');
  const env = await gitEnv();
  const [command, prefix] = await gitDaemonCommand();
  let lastError = '';

  for (let attempt = 1; attempt <= PORT_TRIES; attempt++) {
    // The port is free when probed but may be taken before git binds it
    // (another test file running in parallel): git then exits and we retry.
    const port = await freePort();
    const child = execa(
      command,
      [
        ...prefix,
        // --verbose makes git log "Ready to rumble" once it has bound the
        // port: proof that the listener is ours and not a neighbour's.
        '--verbose',
        '--reuseaddr',
        '--listen=127.0.0.1',
        `--port=${port}`,
        `--base-path=${base}`,
        '--export-all',
        '--enable=receive-pack',
        '--informative-errors',
        `--pid-file=${pidFile}`,
        base,
      ],
      { cwd: base, env, extendEnv: false, stdin: 'ignore', stdout: 'ignore', buffer: false, reject: false },
    );
    const pid = child.pid;
    let log = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (log.length < 64 * 1024) log += chunk;
    });
    let exited = false;
    const done = child.then((result) => {
      exited = true;
      return result;
    });

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        if (exited) return;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 2_000);
        await done;
        clearTimeout(killer);
      })());

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      if (log.includes('Ready to rumble') && (await canConnect(port))) {
        ready = true;
        break;
      }
      await sleep(10);
    }

    if (ready && pid !== undefined) {
      onCleanup(stop);
      return { port, pid, pidFile, url: (repoName) => `git://127.0.0.1:${port}/${repoName}`, stop };
    }

    await stop();
    if (/unable to allocate any listen sockets|address already in use/i.test(log)) {
      lastError = `port ${port} was taken: ${log.trim()}`;
      continue;
    }
    const why = exited ? 'git daemon exited during startup' : `git daemon was not ready within ${READY_TIMEOUT_MS} ms`;
    throw new Error(`${why} (port ${port}, base ${base}): ${log.trim() || '(no output)'}`);
  }
  throw new Error(`git daemon could not get a free port in ${PORT_TRIES} tries; last: ${lastError}`);
}

// ---------------------------------------------------------------- tools

function isTruthyEnv(value: string | undefined): boolean {
  return value !== undefined && value !== '' && !['0', 'false'].includes(value.toLowerCase());
}

/** Whether the tests run under CI, where a missing tool is a failure, never a skip. */
export function isCI(): boolean {
  return isTruthyEnv(process.env.CI);
}

function onPath(name: string): boolean {
  const candidates = name.includes('/')
    ? [name]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, name));
  return candidates.some((file) => {
    try {
      accessSync(file, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Returns true when the tool is on PATH. Otherwise: under CI the test fails
 * (throws), elsewhere it is skipped and false is returned, so a test reads
 *
 *   if (!requireTool('distcc', t)) return;
 */
export function requireTool(name: string, t: TestContext): boolean {
  if (onPath(name)) return true;
  const reason = `${name} is not on PATH (install it with scripts/install-deps.sh)`;
  if (isCI()) throw new Error(`${reason}; CI=true, so a missing tool fails the test instead of skipping it`);
  t.skip(reason);
  return false;
}

// ---------------------------------------------------------------- the CLI

let rootCache: string | undefined;

/** The project root: the nearest directory above this file holding package.json. */
export function repoRoot(): string {
  if (rootCache !== undefined) return rootCache;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  rootCache = dir;
  return dir;
}

/** The compiled CLI entry point. */
export function cliPath(): string {
  return path.join(repoRoot(), 'dist', 'agent', 'cli', 'main.js');
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node dist/agent/cli/main.js ...args` as a real child process and
 * returns its outcome; never throws on a non-zero exit. Unless opts.env names
 * one, BUILDCOORD_HOME is a fresh temp dir for this call. Git inside the CLI
 * sees the same private HOME and identity as git() here.
 */
export async function runCli(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; input?: string; reject?: false; timeoutMs?: number } = {},
): Promise<CliResult> {
  const env: Record<string, string> = { ...(await gitEnv()), NO_COLOR: '1', ...opts.env };
  env.BUILDCOORD_HOME ??= await tmpDir('cli-home-');
  const result = await execa(process.execPath, [cliPath(), ...args], {
    cwd: opts.cwd ?? repoRoot(),
    env,
    extendEnv: false,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
  });
  // A signal leaves no exit code; report it the way a shell would.
  const exitCode =
    result.exitCode ?? (result.signal ? 128 + (os.constants.signals[result.signal] ?? 0) : -1);
  return { exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** Reads a file of a working clone as text (a convenience for assertions). */
export function readRepoFile(workDir: string, rel: string): Promise<string> {
  return readFile(path.join(workDir, rel), 'utf8');
}

/** A real node child process (a fixture script), its output collected. */
export function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The JSON lines a fixture printed. */
/** One JSON log line of an agent (pino), or { raw } for a line that is not JSON. */
export type LogLine = Record<string, unknown> & { msg?: string };

/** Collects a child's JSON-lines output as it arrives, a line at a time (a chunk may end mid-line). */
export function collectJsonLines(stream: NodeJS.ReadableStream): LogLine[] {
  const lines: LogLine[] = [];
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts.filter(Boolean)) {
      try {
        lines.push(JSON.parse(p) as LogLine);
      } catch {
        lines.push({ raw: p });
      }
    }
  });
  return lines;
}

export function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Dead: no such process, or a zombie. Orphans of a killed build are
 * re-parented to PID 1, and on some machines (this one's init is not a
 * real init) PID 1 reaps them only every few seconds: a zombie has stopped
 * running and holds nothing but its PID.
 */
export function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw e;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true; // vanished between the two looks
  }
}

/** The PIDs still alive after waiting up to ms for them to go. */
export async function waitGone(pids: number[], ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids.filter((p) => !isGone(p));
  while (alive.length && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter((p) => !isGone(p));
  }
  return alive;
}
