// The job queue as pure functions: state and time in, new state out. No fs,
// no git, no clock reads. Every function returns a new JobsFile and never
// edits its argument, so a transaction can re-run it on fresh state after a
// rejected push.

import { PreconditionError, UsageError } from '../errors.js';
import type { BuildConfigFile, HeartbeatFile, Iso, Job, JobsFile, JobStatus } from './types.js';

export const JOBS_SCHEMA_REF = '../schemas/jobs.schema.json';

export function emptyJobs(): JobsFile {
  return { $schema: JOBS_SCHEMA_REF, version: 1, jobs: [] };
}

export function iso(d: Date): Iso {
  return d.toISOString();
}

/** Sortable, readable and unique across hosts: time, then 40 random bits. */
export function newId(prefix: 'job' | 'msg', now: Date, random: Buffer): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${prefix}_${stamp}_${random.toString('hex').slice(0, 10)}`;
}

/** What a person asks for when queueing a job; the rest of a Job is the queue's business. */
export type JobInput = Pick<Job, 'type' | 'priority' | 'source' | 'branch' | 'commit' | 'description' | 'dependencies'> &
  Partial<Pick<Job, 'on' | 'labels' | 'timeout_seconds' | 'retries'>>;

/**
 * An item by its id, or by a unique prefix of at least 8 characters: enough
 * for a person typing at a terminal. `kind` and `where` name it in the error.
 */
export function findById<T extends { id: string }>(items: T[], id: string, kind: string, where: string): T {
  const exact = items.find((x) => x.id === id);
  if (exact) return exact;
  const matches = id.length >= 8 ? items.filter((x) => x.id.startsWith(id)) : [];
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new UsageError(`${kind} id ${id} is ambiguous: ${matches.length} ${kind}s start with it`);
  throw new UsageError(`no ${kind} ${id} in ${where}`);
}

export function findJob(file: JobsFile, id: string): Job {
  return findById(file.jobs, id, 'job', 'coordination/jobs.json');
}

export function enqueue(file: JobsFile, input: JobInput, id: string, by: string, now: Date): { file: JobsFile; job: Job } {
  const r = enqueueMany(file, [{ ...input, id }], by, now);
  return { file: r.file, job: r.jobs[0]! };
}

/** Adds several jobs in one change; ids given per job. Dependencies may point at jobs in the same batch. */
export function enqueueMany(
  file: JobsFile,
  inputs: Array<JobInput & { id: string }>,
  by: string,
  now: Date,
): { file: JobsFile; jobs: Job[] } {
  const known = new Set(file.jobs.map((j) => j.id));
  const batch = new Set<string>();
  const jobs: Job[] = [];
  for (const input of inputs) {
    if (known.has(input.id) || batch.has(input.id)) {
      // Ids carry 40 random bits: a clash means the caller reused randomness.
      throw new PreconditionError(`job id ${input.id} already exists`);
    }
    for (const dep of input.dependencies) {
      if (!known.has(dep) && !batch.has(dep)) throw new UsageError(`--after ${dep}: no such job in coordination/jobs.json`);
    }
    batch.add(input.id);
    const job: Job = {
      id: input.id,
      type: input.type,
      priority: input.priority,
      source: input.source,
      branch: input.branch,
      commit: input.commit,
      description: input.description,
      dependencies: [...new Set(input.dependencies)],
      assigned_to: null,
      status: 'queued',
      created_at: iso(now),
      created_by: by,
      started_at: null,
      completed_at: null,
      attempt: 0,
      lease_expires_at: null,
    };
    if (input.on) job.on = input.on;
    if (input.labels && Object.keys(input.labels).length) job.labels = { ...input.labels };
    if (input.timeout_seconds != null) job.timeout_seconds = input.timeout_seconds;
    if (input.retries) job.retries = input.retries;
    jobs.push(job);
  }
  const next = { ...file, jobs: [...file.jobs, ...jobs] };
  return { file: next, jobs };
}

/** Queue order: priority 1 first, then oldest, then id for a total order. */
export function compareQueue(a: Job, b: Job): number {
  // By instant, not by text: "…:00Z" written by hand and "…:00.123Z" from the CLI are the same second.
  const ta = Date.parse(a.created_at);
  const tb = Date.parse(b.created_at);
  return a.priority - b.priority || (ta < tb ? -1 : ta > tb ? 1 : 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export interface BuilderFacts {
  name: string;
  labels?: Record<string, string>;
  /** The types this builder can run; undefined means any. */
  types?: string[];
}

/** Labels in these namespaces carry build parameters (validated by the builder before it runs anything). */
export function isParameterLabel(key: string): boolean {
  return key.startsWith('maven.');
}

export type Blocker = null | 'dependencies' | 'dependency-failed' | 'pinned' | 'labels' | 'type';

/** Why a queued job cannot run on this builder now (null: it can). */
export function indexJobs(file: JobsFile): Map<string, Job> {
  return new Map(file.jobs.map((j) => [j.id, j]));
}

/** Pass `byId` when asking about many jobs of one file: building it per call is quadratic. */
export function blocker(file: JobsFile, job: Job, builder?: BuilderFacts, byId: Map<string, Job> = indexJobs(file)): Blocker {
  for (const dep of job.dependencies) {
    const d = byId.get(dep);
    if (!d || d.status === 'failed' || d.status === 'cancelled') return 'dependency-failed';
    if (d.status !== 'completed') return 'dependencies';
  }
  if (builder) {
    if (job.on && job.on !== builder.name) return 'pinned';
    for (const [k, v] of Object.entries(job.labels ?? {})) {
      // "maven.goals", "maven.profiles": parameters for the build, not a builder property to match.
      if (isParameterLabel(k)) continue;
      if (builder.labels?.[k] !== v) return 'labels';
    }
    if (builder.types && !builder.types.includes(job.type)) return 'type';
  }
  return null;
}

export function eligible(file: JobsFile, builder: BuilderFacts): Job[] {
  const byId = indexJobs(file);
  return file.jobs.filter((j) => j.status === 'queued' && !j.cancel_requested && blocker(file, j, builder, byId) === null).sort(compareQueue);
}

/** The queue in the order it will run: queued jobs by priority and age, running ones first. */
export function runOrder(file: JobsFile): Job[] {
  const rank: Record<JobStatus, number> = { running: 0, queued: 1, failed: 2, cancelled: 3, completed: 4 };
  return [...file.jobs].sort((a, b) => rank[a.status] - rank[b.status] || compareQueue(a, b));
}

function replace(file: JobsFile, job: Job): JobsFile {
  return { ...file, jobs: file.jobs.map((j) => (j.id === job.id ? job : j)) };
}

export function claim(file: JobsFile, builder: BuilderFacts, now: Date, leaseMs: number): { file: JobsFile; job: Job } {
  const next = eligible(file, builder)[0];
  if (!next) throw new PreconditionError('no eligible job');
  return claimJob(file, next.id, builder.name, now, leaseMs);
}

export function claimJob(file: JobsFile, id: string, builder: string, now: Date, leaseMs: number): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  if (cur.status !== 'queued') throw new PreconditionError(`job ${cur.id} is ${cur.status}${cur.assigned_to ? ` on ${cur.assigned_to}` : ''}, not queued`);
  const job: Job = {
    ...cur,
    status: 'running',
    assigned_to: builder,
    attempt: cur.attempt + 1,
    started_at: iso(now),
    completed_at: null,
    lease_expires_at: iso(new Date(now.getTime() + leaseMs)),
    result: null,
  };
  return { file: replace(file, job), job };
}

/** Fencing: every write about a running job must come from its current holder and attempt. */
export function assertHolder(job: Job, builder: string, attempt: number): void {
  if (job.status !== 'running' || job.assigned_to !== builder || job.attempt !== attempt) {
    const now = job.status === 'running' ? `attempt ${job.attempt} on ${job.assigned_to}` : `${job.status}${job.assigned_to ? ` (last on ${job.assigned_to}, attempt ${job.attempt})` : ''}`;
    throw new PreconditionError(`job ${job.id} attempt ${attempt} on ${builder} is no longer current: the job is ${now}`);
  }
}

export function renewLease(file: JobsFile, id: string, builder: string, attempt: number, now: Date, leaseMs: number): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  assertHolder(cur, builder, attempt);
  const job = { ...cur, lease_expires_at: iso(new Date(now.getTime() + leaseMs)) };
  return { file: replace(file, job), job };
}

export type Outcome = 'completed' | 'failed' | 'cancelled';

export function complete(
  file: JobsFile,
  id: string,
  builder: string,
  attempt: number,
  status: Outcome,
  now: Date,
  result?: Job['result'],
): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  assertHolder(cur, builder, attempt);
  const retried = cur.retried ?? 0;
  if (status === 'failed' && retried < (cur.retries ?? 0)) {
    // An automatic retry: back to the queue for any eligible builder; the next claim is a new attempt.
    // The failed attempt's result stays visible until then.
    const summary = `attempt ${cur.attempt} failed on ${builder}; automatic retry ${retried + 1} of ${cur.retries}: ${String(result?.summary ?? cur.result?.summary ?? '')}`;
    const job: Job = { ...cur, status: 'queued', assigned_to: null, started_at: null, completed_at: null, lease_expires_at: null, retried: retried + 1, result: { ...(result ?? cur.result ?? {}), summary } };
    return { file: replace(file, job), job };
  }
  const job: Job = { ...cur, status, completed_at: iso(now), lease_expires_at: null, result: result ?? cur.result ?? null };
  return { file: replace(file, job), job };
}

/** The lease a job really has: main's, or a later one its holder renewed on its heartbeat. */
export function effectiveLease(job: Job, heartbeat: HeartbeatFile | undefined): number {
  let until = job.lease_expires_at ? Date.parse(job.lease_expires_at) : 0;
  for (const l of heartbeat?.leases ?? []) {
    if (l.id === job.id && l.attempt === job.attempt) until = Math.max(until, Date.parse(l.expires_at));
  }
  return until;
}

/** A builder is stale when its last heartbeat is older than the lease (or it never sent one). */
export function isStale(heartbeat: HeartbeatFile | undefined, now: Date, leaseMs: number): boolean {
  if (!heartbeat) return true;
  const t = Date.parse(heartbeat.timestamp);
  return Number.isNaN(t) || now.getTime() - t > leaseMs;
}

export interface Reclaim {
  job: Job;
  from: string;
  failed: boolean;
}

/**
 * Hands running jobs of stale builders whose lease ran out back to the queue.
 * A job taken back more than maxReclaims times fails instead, with the reason.
 * The next claim increments the attempt, which fences the old holder out.
 */
export function reclaimExpired(
  file: JobsFile,
  heartbeats: Map<string, HeartbeatFile>,
  now: Date,
  leaseMs: number,
  maxReclaims: number,
  self?: string,
): { file: JobsFile; reclaimed: Reclaim[] } {
  const reclaimed: Reclaim[] = [];
  const jobs = file.jobs.map((job) => {
    if (job.status !== 'running' || (job.assigned_to !== null && job.assigned_to === self)) return job;
    // A running job with nobody holding it (a hand edit the schema allows) has no builder to wait for.
    const from = job.assigned_to ?? 'nobody';
    if (job.assigned_to) {
      const hb = heartbeats.get(job.assigned_to);
      if (!isStale(hb, now, leaseMs) || effectiveLease(job, hb) > now.getTime()) return job;
    }
    if (job.cancel_requested) {
      // Its cancel was never carried out: the job ends cancelled instead of running again.
      const next = stopCancelled(job, now, `cancelled: ${from} went silent before it stopped attempt ${job.attempt}`);
      reclaimed.push({ job: next, from, failed: false });
      return next;
    }
    const count = (job.reclaims ?? 0) + 1;
    const failed = count > maxReclaims;
    const next: Job = failed
      ? {
          ...job,
          status: 'failed',
          reclaims: count,
          completed_at: iso(now),
          lease_expires_at: null,
          result: { summary: `reclaimed ${count} times (limit ${maxReclaims}): its builders kept going silent; last on ${from}, attempt ${job.attempt}` },
        }
      : { ...job, status: 'queued', assigned_to: null, started_at: null, lease_expires_at: null, reclaims: count };
    reclaimed.push({ job: next, from, failed });
    return next;
  });
  return { file: reclaimed.length ? { ...file, jobs } : file, reclaimed };
}

function stopCancelled(job: Job, now: Date, summary: string): Job {
  return { ...job, status: 'cancelled', completed_at: iso(now), lease_expires_at: null, result: { ...(job.result ?? {}), summary } };
}

/**
 * The holder gives its running job back (drain, or a restart that found it
 * orphaned): it runs again elsewhere as a new attempt. One whose cancel was
 * requested ends cancelled instead: a queued job with a cancel request would never run nor end.
 */
export function handBack(file: JobsFile, id: string, builder: string, attempt: number, now: Date): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  assertHolder(cur, builder, attempt);
  const job: Job = cur.cancel_requested
    ? stopCancelled(cur, now, `cancelled: handed back by ${builder} (attempt ${attempt}) before it stopped`)
    : { ...cur, status: 'queued', assigned_to: null, started_at: null, lease_expires_at: null };
  return { file: replace(file, job), job };
}

/** A queued job is cancelled at once; a running one is marked and its builder stops it. */
export function cancel(file: JobsFile, id: string, by: string, now: Date): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  if (cur.status === 'queued') {
    const job: Job = { ...cur, status: 'cancelled', completed_at: iso(now), result: { summary: `cancelled by ${by} before it ran` } };
    return { file: replace(file, job), job };
  }
  if (cur.status === 'running' && !cur.assigned_to) {
    // Nobody holds it (a hand edit), so nobody would carry out a request: cancel it now.
    const job = stopCancelled(cur, now, `cancelled by ${by} (it was running with no builder)`);
    return { file: replace(file, job), job };
  }
  if (cur.status === 'running') {
    if (cur.cancel_requested) return { file, job: cur };
    const job: Job = { ...cur, cancel_requested: true };
    return { file: replace(file, job), job };
  }
  throw new PreconditionError(`job ${cur.id} is already ${cur.status}`);
}

/** A failed or cancelled job goes back to the queue; its next claim is a new attempt. */
export function retry(file: JobsFile, id: string): { file: JobsFile; job: Job } {
  const cur = findJob(file, id);
  if (cur.status !== 'failed' && cur.status !== 'cancelled') throw new PreconditionError(`job ${cur.id} is ${cur.status}; only failed or cancelled jobs can be retried`);
  // A fresh budget: no reclaims and no automatic retries used yet.
  const job: Job = { ...cur, status: 'queued', assigned_to: null, started_at: null, completed_at: null, lease_expires_at: null, cancel_requested: false, result: null, reclaims: 0, retried: 0 };
  return { file: replace(file, job), job };
}

/** The jobs of a named profile in shared/build_config.json, ready to enqueue in one change. */
export function expandProfile(
  config: BuildConfigFile | undefined,
  name: string,
  over: { branch?: string; commit?: string | null; source?: string | null },
  ids: string[],
): Array<JobInput & { id: string }> {
  const profile = config?.profiles?.[name];
  if (!profile) {
    const known = Object.keys(config?.profiles ?? {});
    throw new UsageError(`--profile ${JSON.stringify(name)}: no such profile in shared/build_config.json${known.length ? ` (there are: ${known.join(', ')})` : ''}`);
  }
  if (profile.jobs.length === 0) throw new UsageError(`profile ${name} has no jobs`);
  if (profile.jobs.length > ids.length) throw new UsageError(`profile ${name} has ${profile.jobs.length} jobs; at most ${ids.length} can be queued at once`);
  const idOf = new Map(profile.jobs.map((step, i) => [step.key, ids[i]!]));
  if (idOf.size !== profile.jobs.length) throw new UsageError(`profile ${name} uses a step key twice`);
  const d = config!.defaults;
  return profile.jobs.map((step, i) => ({
    id: ids[i]!,
    type: step.type,
    priority: step.priority ?? d.priority,
    source: over.source ?? step.source ?? config!.default_source ?? null,
    branch: over.branch ?? d.branch,
    commit: over.commit ?? null,
    description: step.description ?? `${name}: ${step.key}`,
    dependencies: (step.after ?? []).map((key) => {
      const id = idOf.get(key);
      if (!id) throw new UsageError(`profile ${name}: step ${step.key} comes after unknown step ${key}`);
      return id;
    }),
    on: step.on ?? null,
    labels: step.labels ?? {},
    timeout_seconds: step.timeout_seconds !== undefined ? step.timeout_seconds : d.timeout_seconds,
    retries: step.retries ?? d.retries,
  }));
}
