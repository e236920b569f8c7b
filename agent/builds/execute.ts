// Runs one claimed job: checks, source checkout, then the job type's steps
// through the process runner, then artifacts and a manifest.
//
// Job types are an allowlist: the built-in ones (build = maven then deb,
// maven, deb, make) and those a builder declares in its own config file (a
// command with fixed arguments), never anything from the shared repository.
// Nothing a job carries reaches a shell: branch, commit, source, goals and
// profiles are checked here before anything runs, and every process gets
// them as separate argv entries.

import { availableParallelism, hostname } from 'node:os';
import { appendFile, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { FileConfig } from '../config.js';
import { OperationError } from '../errors.js';
import { COMMIT_RE, JOB_ID_RE, SHELL_META, TYPE_RE, isValidBranch } from '../model/input.js';
import type { Job } from '../model/types.js';
import { artifactDir, collect, DEFAULT_ARTIFACTS_DIR, type Artifact } from './artifacts.js';
import { runDeb } from './deb.js';
import { runMake } from './make.js';
import { jobManifest } from './manifest.js';
import { mavenPlan, runMaven } from './maven.js';
import { type ProcessRunner, type RunResult, makeRedactor } from './runner.js';
import { checkout } from './source.js';
import { runSmoketest } from './smoketest.js';
import { PumpRestoreError, restorePump } from './pump.js';
import { RefusedError, which, type StepContext, type StepOutcome, type StepRecord } from './step.js';

export interface ExecDeps {
  runner: ProcessRunner;
  /** Directory for source caches and workspaces. */
  workDir: string;
  config: FileConfig;
  defaultSource: string | null;
  graceMs: number;
  env?: NodeJS.ProcessEnv;
  /** For timestamps in the manifest and the artifacts directory's name. */
  clock?: () => Date;
  /** distcc-pump for pump builds when the config names none (e.g. a managed one with a rebuilt include server); default: distcc-pump on PATH. */
  pump?: string | null;
  /** BUILDCOORD_HOME: where pump-restore installs the rebuilt include server. */
  home?: string;
}

export interface ExecResult {
  status: 'completed' | 'failed' | 'cancelled';
  summary: string;
  exitCode: number | null;
  durationMs: number;
  commit: string | null;
  logFile: string;
  /**
   * What ran and what was built: pushed as <builder>/manifests/<job>.json in
   * the completion commit. Every job has one, failed and refused ones too,
   * except a job whose id is not a job id (it would name the path).
   */
  manifest?: Record<string, unknown>;
  /** Artifact paths for status.json's last_build.artifacts. */
  artifacts?: string[];
  /** Extra fields for the job's result (e.g. distcc mode and why). */
  details?: Record<string, unknown>;
}

/** The built-in job types and the programs each needs on PATH. */
export const BUILTIN_TYPES: Record<string, string[]> = {
  build: ['mvn', 'dpkg-buildpackage'],
  maven: ['mvn'],
  deb: ['dpkg-buildpackage'],
  make: ['make'],
  // No checkout: they test and repair this builder's distcc itself.
  'distcc-smoketest': ['distcc', 'gcc'],
  'pump-restore': ['distcc-pump', 'distccd', 'make', 'gcc', 'patch', 'tar', 'autoconf', 'automake'],
};

/** The command for a builder-declared job type (or plain make), or null if this builder does not run that type that way. */
export function commandFor(job: Job, config: FileConfig): { command: string; args: string[]; timeoutMs?: number } | null {
  const own = config.types?.[job.type];
  if (own) return { command: own.command, args: [...own.args], timeoutMs: own.timeout_seconds ? own.timeout_seconds * 1000 : undefined };
  if (job.type === 'make') return { command: 'make', args: [`-j${Math.max(1, availableParallelism())}`] };
  return null;
}

/** What this builder claims: the built-in types whose tools are installed, and its own. */
export function supportedTypes(config: FileConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  const builtin = Object.entries(BUILTIN_TYPES)
    .filter(([, tools]) => tools.every((t) => which(t, env)))
    .map(([t]) => t);
  return [...new Set([...builtin, ...Object.keys(config.types ?? {})])];
}


/** Everything of the job that will reach a command line, checked before anything runs. */
export function checkJob(job: Job, source: string): void {
  if (!TYPE_RE.test(job.type)) throw new RefusedError(`job type ${JSON.stringify(job.type)} is not a type name`);
  if (typeof job.branch !== 'string' || !isValidBranch(job.branch)) throw new RefusedError(`branch ${JSON.stringify(job.branch)} is not a valid git branch name: refused before anything ran`);
  if (SHELL_META.test(job.branch)) throw new RefusedError(`branch ${JSON.stringify(job.branch)} contains shell metacharacters: refused before anything ran`);
  if (job.commit !== null && (typeof job.commit !== 'string' || !COMMIT_RE.test(job.commit))) {
    throw new RefusedError(`commit ${JSON.stringify(job.commit)} is not 7 to 40 lowercase hex digits: refused before anything ran`);
  }
  // eslint-disable-next-line no-control-regex
  if (!source || source.startsWith('-') || /[\x00-\x1f\x7f]/.test(source)) throw new RefusedError(`source ${JSON.stringify(source)} is not a git URL or path`);
  // git's remote helpers (ext::, fd::, ...) run commands named in the URL itself.
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(source)) throw new RefusedError(`source ${JSON.stringify(source.slice(0, 60))} uses a git remote helper (TRANSPORT::...): refused before anything ran`);
}

const clip = (s: string, n = 900) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** How a job ended, for conclude(): the result and the manifest are both made from it. */
interface Conclusion {
  status: ExecResult['status'];
  /** Redacted and clipped already. */
  summary: string;
  exitCode: number | null;
  mode?: string | null;
  /** Extra fields for the job's result. */
  details?: Record<string, unknown>;
  /** The manifest's share of them, when it differs from details. */
  manifestDetails?: Record<string, unknown>;
  artifacts?: Artifact[];
  artifactsDir?: string | null;
}

/**
 * The runner, recording each process for the manifest: for the job types
 * that call it themselves (smoke test, pump restore) rather than through
 * StepContext.run, which records its own.
 */
function recording(runner: ProcessRunner, steps: StepRecord[], redact: (line: string) => string): ProcessRunner {
  return async (spec) => {
    const r = await runner(spec);
    steps.push({ name: basename(spec.command), command: spec.command, args: spec.args.map(redact), exit_code: r.exitCode, duration_seconds: Math.round(r.durationMs / 100) / 10, summary: r.summary });
    return r;
  };
}

export async function executeJob(job: Job, signal: AbortSignal, deps: ExecDeps): Promise<ExecResult> {
  const clock = deps.clock ?? (() => new Date());
  const started = Date.now();
  const startedAt = clock();
  // The id names a directory, and the manifest's path in the coordination
  // repository: checked before it is used as either, and no manifest without it.
  if (typeof job.id !== 'string' || !JOB_ID_RE.test(job.id) || !Number.isInteger(job.attempt)) {
    return { status: 'failed', summary: `refused: job id ${JSON.stringify(String(job.id).slice(0, 60))} is not a job id`, exitCode: null, durationMs: 0, commit: null, logFile: '' };
  }
  const base = join(deps.workDir, 'jobs', `${job.id}-${job.attempt}`);
  await mkdir(base, { recursive: true });
  const logFile = join(base, 'build.log');
  const env = { ...(deps.env ?? process.env) };
  const redact = makeRedactor(env, deps.config.redact ?? []);
  const note = (line: string) => appendFile(logFile, redact(`[buildcoord] ${line}`) + '\n');
  // What the manifest says about the job, filled in as it becomes known: a
  // job refused at once still gets one, with what it asked for.
  const facts = { source: job.source ?? null, commit: null as string | null, steps: [] as StepRecord[] };
  const conclude = (c: Conclusion): ExecResult => {
    const durationMs = Date.now() - started;
    const artifacts = c.artifacts ?? [];
    const manifest = jobManifest({
      job,
      builder: job.assigned_to ?? deps.config.builder ?? null,
      source: typeof facts.source === 'string' ? redact(facts.source) : null,
      commit: facts.commit,
      status: c.status,
      summary: c.summary,
      startedAt,
      finishedAt: clock(),
      durationMs,
      mode: c.mode ?? null,
      steps: facts.steps,
      artifactsDir: c.artifactsDir ?? null,
      artifacts,
      details: c.manifestDetails ?? c.details,
    });
    return { status: c.status, summary: c.summary, exitCode: c.exitCode, durationMs, commit: facts.commit, logFile, manifest, artifacts: artifacts.map((a) => a.path), details: c.details };
  };
  const fail = async (summary: string, status: ExecResult['status'] = 'failed', more: Pick<Conclusion, 'exitCode' | 'mode' | 'details'> = { exitCode: null }): Promise<ExecResult> => {
    summary = clip(redact(summary));
    await note(summary);
    return conclude({ ...more, status, summary });
  };

  const own = deps.config.types?.[job.type];
  if (!own && !BUILTIN_TYPES[job.type]) return fail(`job type ${job.type} is not supported on this builder (it runs: ${supportedTypes(deps.config, env).join(', ')})`);
  if (!own && job.type === 'distcc-smoketest') {
    const r = await runSmoketest(deps.config.distcc_hosts ?? '', join(base, 'smoketest'), logFile, recording(deps.runner, facts.steps, redact), { env, signal, redact });
    return conclude({
      status: signal.aborted ? 'cancelled' : r.ok ? 'completed' : 'failed',
      summary: clip(redact(r.summary)),
      exitCode: r.ok ? 0 : 1,
      details: { smoketest: { local: r.local, hosts: r.hosts, skipped: r.skipped } },
    });
  }
  if (!own && job.type === 'pump-restore') {
    if (!deps.home) return fail('pump-restore needs the agent home directory');
    try {
      const r = await restorePump({ home: deps.home, source: deps.config.distcc_source, patchesDir: deps.config.distcc_patches, runner: recording(deps.runner, facts.steps, redact), env, signal, clock, alsoLog: logFile, redact });
      const details = { pump: r.pump, restore_log: r.log, patches: r.patches, steps: r.steps };
      return conclude({
        status: 'completed',
        summary: clip(redact(`pump restored: ${r.dir} (python ${r.python_version}); ${r.verify.reason}`)),
        exitCode: 0,
        details,
        // Nested: the restore's "steps" are its stages, the manifest's the processes it ran.
        manifestDetails: { pump_restore: details },
      });
    } catch (e) {
      if (e instanceof PumpRestoreError) {
        const details = { step: e.step, restore_log: e.logFile };
        return conclude({ status: signal.aborted ? 'cancelled' : 'failed', summary: clip(redact(e.message)), exitCode: null, details, manifestDetails: { pump_restore: details } });
      }
      // Another restore holding this host's lock is a reason the job failed,
      // with its log and manifest, not an internal error.
      if (e instanceof OperationError) return fail(e.message);
      throw e;
    }
  }
  const source = job.source ?? deps.defaultSource;
  if (!source) return fail('the job names no source and shared/build_config.json has no default_source');
  facts.source = source;
  let maven: { goals: string[]; profiles: string[] } | null = null;
  try {
    checkJob(job, source);
    if (!own && (job.type === 'maven' || job.type === 'build')) maven = mavenPlan(job, deps.config);
  } catch (e) {
    if (e instanceof RefusedError) return fail(`refused: ${e.message}`);
    throw e;
  }

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
  facts.commit = commit;
  if (signal.aborted) return fail('stopped before the build started', 'cancelled');

  const custom = own ? commandFor(job, deps.config) : null;
  const timeoutMs = job.timeout_seconds ? job.timeout_seconds * 1000 : custom?.timeoutMs;
  const deadline = timeoutMs ? started + timeoutMs : null;
  const stepEnv = { ...env, BUILDCOORD_JOB: job.id, BUILDCOORD_ATTEMPT: String(job.attempt), BUILDCOORD_COMMIT: commit };
  const ctx: StepContext = {
    job,
    dir,
    base,
    config: deps.config,
    env: stepEnv,
    logFile,
    redact,
    note,
    signal,
    pump: deps.pump ?? null,
    async run(name, command, args, o = {}): Promise<RunResult> {
      const left = deadline === null ? undefined : Math.max(1, deadline - Date.now());
      const limit = o.timeoutMs !== undefined && left !== undefined ? Math.min(o.timeoutMs, left) : (o.timeoutMs ?? left);
      if (!o.logFile) await note(`${name}: ${[command, ...args].join(' ')}`);
      const r = await deps.runner({ command, args, cwd: o.cwd ?? dir, env: { ...stepEnv, ...o.env }, logFile: o.logFile ?? logFile, timeoutMs: limit, signal, graceMs: deps.graceMs, redact });
      // A job-level timeout says so in the job's terms, not the step's.
      const summary = r.timedOut && deadline !== null && (o.timeoutMs === undefined || left! <= o.timeoutMs) ? `timed out after the job's ${Math.round(timeoutMs! / 1000)} s` : r.summary;
      facts.steps.push({ name, command, args: args.map(redact), exit_code: r.exitCode, duration_seconds: Math.round(r.durationMs / 100) / 10, summary });
      if (!o.logFile) await note(`${name}: ${summary}`);
      return { ...r, summary };
    },
  };

  const outcomes: Array<[string, StepOutcome]> = [];
  if (custom) {
    const r = await ctx.run(job.type, custom.command, custom.args);
    const ok = r.exitCode === 0 && !r.timedOut && !r.aborted;
    outcomes.push([job.type, { ok, summary: `${custom.command} ${r.summary}`, exitCode: r.exitCode, aborted: r.aborted, files: [], mode: 'command' }]);
  } else {
    const plan = job.type === 'build' ? ['maven', 'deb'] : [job.type];
    for (const kind of plan) {
      const o = kind === 'maven' ? await runMaven(ctx, maven!) : kind === 'deb' ? await runDeb(ctx) : await runMake(ctx);
      outcomes.push([kind, o]);
      if (!o.ok) break;
      if (signal.aborted) break;
    }
    if (plan.length > outcomes.length && outcomes.every(([, o]) => o.ok)) outcomes.push(['stopped', { ok: false, summary: 'stopped between steps', exitCode: null, aborted: true, files: [] }]);
  }

  const ok = outcomes.every(([, o]) => o.ok) && !signal.aborted;
  const aborted = signal.aborted || outcomes.some(([, o]) => o.aborted);
  const status: ExecResult['status'] = ok ? 'completed' : aborted ? 'cancelled' : 'failed';
  const last = outcomes[outcomes.length - 1]?.[1];
  let summary = outcomes.length > 1 ? outcomes.map(([k, o]) => `${k}: ${o.summary}`).join('; ') : (last?.summary ?? 'nothing ran');
  if (job.type === 'build' && !ok && outcomes.length === 1) summary += '; deb not run';
  const mode = outcomes.map(([, o]) => o.mode).filter(Boolean).join('+') || null;
  const details: Record<string, unknown> = { mode };
  for (const [, o] of outcomes) Object.assign(details, o.details);

  let artifacts: Artifact[] = [];
  let where: string | null = null;
  if (ok) {
    const files = outcomes.flatMap(([, o]) => o.files);
    if (files.length) {
      const builder = job.assigned_to ?? deps.config.builder ?? hostname();
      try {
        where = await artifactDir(deps.config.artifacts_dir ?? DEFAULT_ARTIFACTS_DIR, builder, job.type, clock());
        artifacts = await collect(files, where);
        for (const a of artifacts) await note(`artifact ${a.path} (${a.size} bytes, sha256 ${a.sha256})`);
      } catch (e) {
        return fail(`the build succeeded but its artifacts could not be stored: ${(e as Error).message}`, 'failed', { exitCode: 0, mode, details });
      }
    }
  }
  summary = clip(redact(summary));
  await note(`${status}: ${summary}`);
  return conclude({ status, summary, exitCode: last?.exitCode ?? null, mode, details, artifacts, artifactsDir: where });
}
