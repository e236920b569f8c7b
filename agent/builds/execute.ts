// Runs one claimed job: source checkout, then the job type's command through
// the process runner. Job types are an allowlist; a builder may add its own
// in its config file (a command with fixed arguments), never from the
// shared repository.

import { availableParallelism } from 'node:os';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileConfig } from '../config.js';
import type { Job } from '../model/types.js';
import { type ProcessRunner, makeRedactor } from './runner.js';
import { checkout } from './source.js';

export interface ExecDeps {
  runner: ProcessRunner;
  /** Directory for source caches and workspaces. */
  workDir: string;
  config: FileConfig;
  defaultSource: string | null;
  graceMs: number;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  status: 'completed' | 'failed' | 'cancelled';
  summary: string;
  exitCode: number | null;
  durationMs: number;
  commit: string | null;
  logFile: string;
  /** What was built and where: pushed as <builder>/manifests/<job>.json in the completion commit. */
  manifest?: Record<string, unknown>;
  /** Artifact paths for status.json's last_build.artifacts. */
  artifacts?: string[];
  /** Extra fields for the job's result (e.g. distcc mode and why). */
  details?: Record<string, unknown>;
}

/** The command for a job type, or null if this builder does not run that type. */
export function commandFor(job: Job, config: FileConfig): { command: string; args: string[]; timeoutMs?: number } | null {
  const own = config.types?.[job.type];
  if (own) return { command: own.command, args: [...own.args], timeoutMs: own.timeout_seconds ? own.timeout_seconds * 1000 : undefined };
  if (job.type === 'make') return { command: 'make', args: [`-j${Math.max(1, availableParallelism())}`] };
  return null;
}

export function supportedTypes(config: FileConfig): string[] {
  return ['make', ...Object.keys(config.types ?? {})];
}

export async function executeJob(job: Job, signal: AbortSignal, deps: ExecDeps): Promise<ExecResult> {
  const started = Date.now();
  const base = join(deps.workDir, 'jobs', `${job.id}-${job.attempt}`);
  await mkdir(base, { recursive: true });
  const logFile = join(base, 'build.log');
  const env = { ...(deps.env ?? process.env) };
  const redact = makeRedactor(env, deps.config.redact ?? []);
  const note = (line: string) => appendFile(logFile, redact(`[buildcoord] ${line}`) + '\n');
  const fail = async (summary: string, status: ExecResult['status'] = 'failed', commit: string | null = null): Promise<ExecResult> => {
    await note(summary);
    return { status, summary, exitCode: null, durationMs: Date.now() - started, commit, logFile };
  };

  const cmd = commandFor(job, deps.config);
  if (!cmd) return fail(`job type ${job.type} is not supported on this builder (it runs: ${supportedTypes(deps.config).join(', ')})`);
  const source = job.source ?? deps.defaultSource;
  if (!source) return fail('the job names no source and shared/build_config.json has no default_source');

  await note(`job ${job.id} attempt ${job.attempt}: ${job.type} of ${source} ${job.branch}${job.commit ? ` at ${job.commit}` : ''}`);
  let commit: string;
  let dir: string;
  try {
    const co = await checkout(join(deps.workDir, 'sources'), source, job.branch, job.commit, join(base, 'src'));
    commit = co.commit;
    dir = co.dir;
  } catch (e) {
    return fail(`checkout failed: ${(e as Error).message}`);
  }
  if (signal.aborted) return fail('stopped before the build started', 'cancelled', commit);
  await note(`checked out ${commit}; running ${[cmd.command, ...cmd.args].join(' ')}`);
  const timeoutMs = job.timeout_seconds ? job.timeout_seconds * 1000 : cmd.timeoutMs;
  const r = await deps.runner({
    command: cmd.command,
    args: cmd.args,
    cwd: dir,
    env: { ...env, BUILDCOORD_JOB: job.id, BUILDCOORD_ATTEMPT: String(job.attempt), BUILDCOORD_COMMIT: commit },
    logFile,
    timeoutMs,
    signal,
    graceMs: deps.graceMs,
    redact,
  });
  await note(r.summary);
  const status = r.aborted ? 'cancelled' : r.exitCode === 0 && !r.timedOut ? 'completed' : 'failed';
  return { status, summary: `${cmd.command} ${r.summary}`, exitCode: r.exitCode, durationMs: Date.now() - started, commit, logFile };
}
