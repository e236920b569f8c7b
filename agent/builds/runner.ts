// The one way a build process is started. No shell: a command and its
// arguments. Each build runs in its own process group, so stopping it stops
// everything it spawned (SIGTERM to the group, a grace period, then SIGKILL).
// Output goes line by line through the redactor into the job's log file.

import { createWriteStream, type WriteStream } from 'node:fs';
import { Transform } from 'node:stream';

export interface RunSpec {
  command: string;
  args: string[];
  cwd: string;
  env?: Record<string, string | undefined>;
  /** Appended to, one line at a time. */
  logFile: string;
  timeoutMs?: number | null;
  /** Aborting stops the process tree (cancel, drain, fencing). */
  signal?: AbortSignal;
  /** SIGTERM to SIGKILL. */
  graceMs?: number;
  redact?: (line: string) => string;
  /** Told the new process group's leader the moment it exists (synchronously): the agent records it so a restart can stop a build it lost. */
  onSpawn?: (pid: number) => void;
}

export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** Why it stopped, for a person. */
  summary: string;
}

export type ProcessRunner = (spec: RunSpec) => Promise<RunResult>;

function lineRedactor(redact: (line: string) => string): Transform {
  let rest = '';
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const text = rest + chunk.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      done(null, lines.map((l) => redact(l) + '\n').join(''));
    },
    flush(done) {
      done(null, rest ? redact(rest) + '\n' : '');
    },
  });
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* the group is gone already */
  }
}

export const runProcess: ProcessRunner = async (spec) => {
  const started = Date.now();
  // Loaded on the first build, not at start: execa is about a hundred modules
  // (~15 MB resident) an idle agent has no use for.
  const { execa } = await import('execa');
  const log: WriteStream = createWriteStream(spec.logFile, { flags: 'a' });
  const proc = execa(spec.command, spec.args, {
    cwd: spec.cwd,
    env: spec.env,
    extendEnv: false,
    detached: true, // its own process group: the unit of stopping
    stdin: 'ignore',
    all: true,
    buffer: false,
    reject: false,
    cleanup: true,
  });
  if (proc.pid !== undefined) spec.onSpawn?.(proc.pid);
  proc.all!.pipe(lineRedactor(spec.redact ?? ((l) => l))).pipe(log);
  const grace = spec.graceMs ?? 10_000;
  let timedOut = false;
  let aborted = false;
  let killTimer: NodeJS.Timeout | null = null;
  const stop = () => {
    if (proc.pid === undefined || killTimer) return;
    killGroup(proc.pid, 'SIGTERM');
    killTimer = setTimeout(() => proc.pid !== undefined && killGroup(proc.pid, 'SIGKILL'), grace);
  };
  const timer = spec.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        stop();
      }, spec.timeoutMs)
    : null;
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (spec.signal?.aborted) onAbort();
  spec.signal?.addEventListener('abort', onAbort, { once: true });
  // The leader exited: anything it left in its group goes too, at once. A
  // background process still holding the output pipe would otherwise keep
  // `await proc` (which waits for the output to end) pending until it exits
  // by itself: a build that "finished" but never reports, forever without a timeout.
  let leftoverTimer: NodeJS.Timeout | null = null;
  proc.once('exit', () => {
    if (proc.pid === undefined) return;
    const pid = proc.pid;
    killGroup(pid, timedOut || aborted ? 'SIGKILL' : 'SIGTERM');
    leftoverTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), grace);
  });
  const r = await proc;
  if (proc.pid !== undefined) killGroup(proc.pid, timedOut || aborted ? 'SIGKILL' : 'SIGTERM');
  if (timer) clearTimeout(timer);
  if (killTimer) clearTimeout(killTimer);
  if (leftoverTimer) clearTimeout(leftoverTimer);
  spec.signal?.removeEventListener('abort', onAbort);
  await new Promise<void>((resolve) => (log.writableFinished ? resolve() : log.once('finish', () => resolve())));
  const exitCode = typeof r.exitCode === 'number' ? r.exitCode : null;
  const signal = r.signal ?? null;
  const durationMs = Date.now() - started;
  const secs = Math.round(durationMs / 100) / 10;
  const summary = r.failed && exitCode === null && !signal && !timedOut && !aborted
    ? `could not start ${spec.command}: ${String(r.shortMessage ?? r.message).split('\n')[0]}`
    : timedOut
      ? `timed out after ${Math.round((spec.timeoutMs ?? 0) / 1000)} s`
      : aborted
        ? `stopped after ${secs} s`
        : exitCode === 0
          ? `succeeded in ${secs} s`
          : signal
            ? `killed by ${signal} after ${secs} s`
            : `exited with ${exitCode} after ${secs} s`;
  return { exitCode, signal, timedOut, aborted, durationMs, summary };
};

/** Secrets never reach a pushed log: values of env vars named like secrets, URL credentials, and configured strings. */
export function makeRedactor(env: Record<string, string | undefined>, extra: string[] = []): (line: string) => string {
  const secrets = new Set<string>(extra.filter((s) => s.length >= 4));
  for (const [k, v] of Object.entries(env)) {
    if (v && v.length >= 4 && /TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL/i.test(k)) secrets.add(v);
  }
  const list = [...secrets].sort((a, b) => b.length - a.length);
  return (line) => {
    // The userinfo runs to the LAST "@" before the host: a password may hold an
    // unencoded "@", and stopping at the first one would leave the rest of it
    // in the log. It cannot cross a "/" or whitespace, which keeps the match
    // inside one URL's authority (two URLs on a line are two matches).
    let out = line.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s]+@/gi, '$1***@');
    for (const s of list) if (out.includes(s)) out = out.split(s).join('***');
    return out;
  };
}

/** A text of many lines (a log written by another program, output read back) through a line redactor, line by line. */
export function redactText(text: string, redact: (line: string) => string): string {
  return text.split('\n').map(redact).join('\n');
}
