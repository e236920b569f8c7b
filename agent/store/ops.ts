// Coordination operations: each is one transaction that reads what it needs,
// runs a pure model function and says what to write. The CLI and the daemon
// both call these; neither edits a coordination file any other way.

import { randomBytes } from 'node:crypto';
import { OperationError, PreconditionError } from '../errors.js';
import * as jobs from '../model/jobs.js';
import { isPaused } from '../model/fleet.js';
import { PATHS, type BuildConfigFile, type Job, type JobsFile } from '../model/types.js';
import type { Store, TxOutcome } from './store.js';

export interface OpDeps {
  clock?: () => Date;
  random?: (n: number) => Buffer;
}

function deps(d: OpDeps = {}) {
  return { now: d.clock ?? (() => new Date()), rand: d.random ?? randomBytes };
}

function jobsOf(file: JobsFile | undefined): JobsFile {
  return file ?? jobs.emptyJobs();
}

/** A job as a person asked for it: unset fields take shared/build_config.json's defaults. */
export type JobDraft = Omit<jobs.JobInput, 'priority' | 'source' | 'branch' | 'timeout_seconds' | 'retries'> &
  Partial<Pick<jobs.JobInput, 'priority' | 'source' | 'branch' | 'timeout_seconds' | 'retries'>>;

export function withDefaults(draft: JobDraft, config: BuildConfigFile | undefined): jobs.JobInput {
  const d = config?.defaults;
  return {
    ...draft,
    priority: draft.priority ?? d?.priority ?? 5,
    source: draft.source ?? config?.default_source ?? null,
    branch: draft.branch ?? d?.branch ?? 'main',
    timeout_seconds: draft.timeout_seconds !== undefined ? draft.timeout_seconds : d?.timeout_seconds ?? null,
    retries: draft.retries ?? d?.retries ?? 0,
  };
}

export async function addJobs(store: Store, drafts: JobDraft[], d?: OpDeps, what?: string): Promise<TxOutcome<Job[]>> {
  const { now, rand } = deps(d);
  // Ids are drawn once, outside mutate: a re-run after a rejected push must add
  // the same jobs, not new ones with new ids.
  const at = now();
  const ids = drafts.map(() => jobs.newId('job', at, rand(5)));
  // The defaults file is read only when a draft leaves a gap: a broken
  // build_config.json must not block a fully specified enqueue.
  const needDefaults = drafts.some((j) => j.priority === undefined || j.source === undefined || j.branch === undefined || j.timeout_seconds === undefined || j.retries === undefined);
  return store.transact({
    op: 'enqueue',
    reads: needDefaults ? [PATHS.jobs, PATHS.buildConfig] : [PATHS.jobs],
    mutate: (view) => {
      const config = needDefaults ? view.get<BuildConfigFile>(PATHS.buildConfig) : undefined;
      const withIds = drafts.map((draft, i) => ({ ...withDefaults(draft, config), id: ids[i]! }));
      const current = jobsOf(view.get<JobsFile>(PATHS.jobs));
      // Our ids already there: an earlier push whose answer was lost (a timeout after
      // the remote took it) did land. Enqueued once, not twice, and not an error.
      const landed = withIds.map((j) => current.jobs.find((x) => x.id === j.id));
      if (landed.every(Boolean)) return { result: landed as Job[] };
      const r = jobs.enqueueMany(current, withIds, store.actor, at);
      const first = r.jobs[0]!;
      return {
        result: r.jobs,
        writes: { [PATHS.jobs]: r.file },
        message: what ?? (r.jobs.length === 1 ? `enqueue ${first.type} job ${first.id} (${first.branch})` : `enqueue ${r.jobs.length} jobs`),
        trailers: { 'Coord-Job': r.jobs.map((j) => j.id).join(' ') },
      };
    },
  });
}

export async function claimNext(store: Store, builder: jobs.BuilderFacts, leaseMs: number, d?: OpDeps): Promise<TxOutcome<Job>> {
  const { now } = deps(d);
  return store.transact({
    op: 'claim',
    reads: [PATHS.jobs, PATHS.buildConfig],
    mutate: (view) => {
      // The same rule the agents follow: a paused builder (or fleet) claims nothing, by hand either.
      const pause = isPaused(view.get<BuildConfigFile>(PATHS.buildConfig), builder.name);
      if (pause.paused) throw new PreconditionError(`${builder.name} is paused${pause.by ? ` (by ${pause.by})` : ''}: it claims nothing until \`buildcoord control resume\``);
      const r = jobs.claim(jobsOf(view.get<JobsFile>(PATHS.jobs)), builder, now(), leaseMs);
      return {
        result: r.job,
        writes: { [PATHS.jobs]: r.file },
        message: `claim ${r.job.id} on ${builder.name} (attempt ${r.job.attempt})`,
        trailers: { 'Coord-Job': r.job.id, 'Coord-Attempt': String(r.job.attempt) },
      };
    },
  });
}

export async function completeJob(
  store: Store,
  args: { id: string; builder: string; attempt: number; status: jobs.Outcome; result?: Job['result']; extra?: Record<string, unknown>; raw?: Record<string, string | Buffer | null> },
  d?: OpDeps,
): Promise<TxOutcome<Job>> {
  const { now } = deps(d);
  return store.transact({
    op: 'complete',
    reads: [PATHS.jobs],
    mutate: (view) => {
      const r = jobs.complete(jobsOf(view.get<JobsFile>(PATHS.jobs)), args.id, args.builder, args.attempt, args.status, now(), args.result);
      return {
        result: r.job,
        writes: { [PATHS.jobs]: r.file, ...args.extra },
        raw: args.raw,
        message: `${args.status} ${r.job.id} on ${args.builder} (attempt ${args.attempt})`,
        trailers: { 'Coord-Job': r.job.id, 'Coord-Attempt': String(args.attempt), 'Coord-Result': args.status },
      };
    },
  });
}

export async function renewLease(store: Store, args: { id: string; builder: string; attempt: number; leaseMs: number }, d?: OpDeps): Promise<TxOutcome<Job>> {
  const { now } = deps(d);
  return store.transact({
    op: 'renew',
    reads: [PATHS.jobs],
    mutate: (view) => {
      const r = jobs.renewLease(jobsOf(view.get<JobsFile>(PATHS.jobs)), args.id, args.builder, args.attempt, now(), args.leaseMs);
      return {
        result: r.job,
        writes: { [PATHS.jobs]: r.file },
        message: `renew lease of ${r.job.id} on ${args.builder} (attempt ${args.attempt})`,
        trailers: { 'Coord-Job': r.job.id, 'Coord-Attempt': String(args.attempt) },
      };
    },
  });
}

export async function readJobs(store: Store): Promise<JobsFile> {
  const view = await store.read([PATHS.jobs]);
  return jobsOf(view.get<JobsFile>(PATHS.jobs));
}

export { PreconditionError };

/** Queues every job of a profile in one commit, with dependencies between them as the profile says. */
export async function addProfile(
  store: Store,
  name: string,
  over: { branch?: string; commit?: string | null; source?: string | null },
  d?: OpDeps,
): Promise<TxOutcome<Job[]>> {
  const { now, rand } = deps(d);
  const at = now();
  // Drawn before reading the profile, so a re-run after a rejected push reuses them.
  const ids = Array.from({ length: 32 }, () => jobs.newId('job', at, rand(5)));
  return store.transact({
    op: 'enqueue',
    reads: [PATHS.jobs, PATHS.buildConfig],
    mutate: (view) => {
      const inputs = jobs.expandProfile(view.get<BuildConfigFile>(PATHS.buildConfig), name, over, ids);
      const r = jobs.enqueueMany(jobsOf(view.get<JobsFile>(PATHS.jobs)), inputs, store.actor, at);
      return {
        result: r.jobs,
        writes: { [PATHS.jobs]: r.file },
        message: `enqueue profile ${name} (${r.jobs.length} jobs, ${r.jobs[0]!.branch})`,
        trailers: { 'Coord-Job': r.jobs.map((j) => j.id).join(' '), 'Coord-Profile': name },
      };
    },
  });
}

/**
 * Pause or resume claiming for one builder (target) or the fleet (null), as
 * `control pause|resume` and the dashboard do. Result: false when it was
 * already so and nothing changed.
 */
export function setPause(store: Store, target: string | null, paused: boolean, by: string, now: Date): Promise<TxOutcome<boolean>> {
  return store.transact({
    op: paused ? 'pause' : 'resume',
    reads: [PATHS.buildConfig],
    mutate: (view) => {
      const config = view.get<BuildConfigFile>(PATHS.buildConfig);
      if (!config) throw new OperationError(`${PATHS.buildConfig} is missing; run buildcoord init`);
      const control = { paused: false, ...(config.control ?? {}) };
      const stamp = { paused, paused_by: paused ? by : null, paused_at: paused ? now.toISOString() : null };
      if (target === null) {
        if (control.paused === paused) return { result: false };
        Object.assign(control, stamp);
      } else {
        const builders = { ...(control.builders ?? {}) };
        if ((builders[target]?.paused ?? false) === paused) return { result: false };
        if (paused) builders[target] = stamp;
        else delete builders[target];
        control.builders = builders;
      }
      return {
        result: true,
        writes: { [PATHS.buildConfig]: { ...config, control } },
        message: `${paused ? 'pause' : 'resume'} ${target ?? 'the fleet'} (by ${by})`,
      };
    },
  });
}

/** The same transaction as `buildcoord job cancel|retry` (agent/cli/cmd-fleet.ts). */
/** Cancel or retry one job, as `job cancel|retry` and the dashboard do. */
export function jobAction(store: Store, op: 'cancel' | 'retry', id: string, by: string, now: Date): Promise<TxOutcome<Job>> {
  return store.transact({
    op,
    reads: [PATHS.jobs],
    mutate: (view) => {
      const before = view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs();
      const out = op === 'cancel' ? jobs.cancel(before, id, by, now) : jobs.retry(before, id);
      if (out.file === before) return { result: out.job };
      return { result: out.job, writes: { [PATHS.jobs]: out.file }, message: `${op} ${out.job.id} (by ${by})`, trailers: { 'Coord-Job': out.job.id } };
    },
  });
}
