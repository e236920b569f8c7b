// The daemon's transactions. Each job costs main exactly three commits:
// enqueue (a person), claim (with status "building") and completion (with
// status, log tail and result). Lease renewals ride on the heartbeat branch.

import { PreconditionError } from '../errors.js';
import * as jobs from '../model/jobs.js';
import { PATHS, type BuildConfigFile, type BuilderState, type HeartbeatFile, type Job, type JobsFile, type Message, type MessagesFile, type StatusFile } from '../model/types.js';
import * as msgs from '../model/messages.js';
import { statusFor } from '../store/layout.js';
import { isPaused } from '../model/fleet.js';
import type { Store, TxOutcome, TxView } from '../store/store.js';
import { healthDashboardReads, MoreReadsNeeded, planHealthDashboard } from '../dashboard/ops.js';

/**
 * shared/health_dashboard.json rides in the claim and completion commits (never
 * a commit of its own: main stays at three commits per job). Other builders'
 * status files are soft reads: a broken one is left out of the summary and
 * never blocks a claim.
 */
export interface DashboardContext {
  /** Builder names whose status files to read; grows as main shows more. */
  builders: Set<string>;
  heartbeats: ReadonlyMap<string, HeartbeatFile>;
  staleAfterMs: number;
}

function dashboardWrites(view: TxView, dash: DashboardContext | undefined, now: Date, pending: { jobs?: JobsFile; statuses?: Record<string, StatusFile> }): Record<string, unknown> {
  if (!dash) return {};
  try {
    return planHealthDashboard(view, { builders: dash.builders, heartbeats: dash.heartbeats, now, staleAfterMs: dash.staleAfterMs, pending }).writes;
  } catch (e) {
    if (!(e instanceof MoreReadsNeeded)) throw e;
    // Builders we had not read yet: this commit goes without the summary; the next one has them.
    for (const n of e.names) dash.builders.add(n);
    return {};
  }
}

/** status.json's current_job for a running job. */
function currentJobOf(job: Job): NonNullable<StatusFile['current_job']> {
  return { id: job.id, branch: job.branch, commit: job.commit, started_at: job.started_at ?? new Date(0).toISOString(), attempt: job.attempt };
}

function statusOf(view: TxView, builder: string, now: Date): StatusFile {
  return view.get<StatusFile>(PATHS.status(builder)) ?? statusFor(builder, now);
}

function withState(prev: StatusFile, state: BuilderState, now: Date, patch: Partial<StatusFile> = {}): StatusFile {
  return { ...prev, ...patch, status: state, timestamp: now.toISOString() };
}

export interface ClaimArgs {
  builder: jobs.BuilderFacts;
  leaseMs: number;
  now: () => Date;
  agentVersion: string;
  dashboard?: DashboardContext;
}

/** Claim the best eligible job and mark the builder building, in one commit. Null if none or paused. */
export function agentClaim(store: Store, a: ClaimArgs): Promise<TxOutcome<Job | { paused: true } | null>> {
  const name = a.builder.name;
  return store.transact<Job | { paused: true } | null>({
    op: 'claim',
    reads: [PATHS.jobs, PATHS.buildConfig, PATHS.status(name)],
    softReads: a.dashboard ? healthDashboardReads(a.dashboard.builders) : undefined,
    mutate: (view) => {
      const now = a.now();
      const status = statusOf(view, name, now);
      if (isPaused(view.get<BuildConfigFile>(PATHS.buildConfig), name).paused) {
        if (status.status === 'paused') return { result: { paused: true as const } };
        return { result: { paused: true as const }, writes: { [PATHS.status(name)]: withState(status, 'paused', now, { current_job: null }) }, message: `${name} paused` };
      }
      let r: { file: JobsFile; job: Job };
      try {
        r = jobs.claim(view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs(), a.builder, now, a.leaseMs);
      } catch (e) {
        if (e instanceof PreconditionError && e.message === 'no eligible job') {
          // Coming back from a pause (or a fresh start) with nothing to do is a transition too.
          if (status.status === 'paused' || status.status === 'offline') {
            return { result: null, writes: { [PATHS.status(name)]: withState(status, 'idle', now, { current_job: null, agent_version: a.agentVersion }) }, message: `${name} idle` };
          }
          return { result: null };
        }
        throw e;
      }
      const job = r.job;
      const next = withState(status, 'building', now, {
        current_job: currentJobOf(job),
        agent_version: a.agentVersion,
        ...(a.builder.labels && Object.keys(a.builder.labels).length ? { labels: a.builder.labels } : {}),
      });
      return {
        result: job,
        writes: { [PATHS.jobs]: r.file, [PATHS.status(name)]: next, ...dashboardWrites(view, a.dashboard, now, { jobs: r.file, statuses: { [name]: next } }) },
        message: `claim ${job.id} on ${name} (attempt ${job.attempt})`,
        trailers: { 'Coord-Job': job.id, 'Coord-Attempt': String(job.attempt) },
      };
    },
  });
}

export interface Completion {
  id: string;
  attempt: number;
  builder: string;
  status: jobs.Outcome;
  result: NonNullable<Job['result']>;
  durationSeconds: number;
  artifacts: string[];
  /** Files that ride in the same commit: the log tail, the manifest. */
  raw?: Record<string, string | Buffer>;
  extra?: Record<string, unknown>;
}

/**
 * Record the end of an attempt, the builder's new status and the log, in one commit. Fenced by attempt.
 * `others`: the jobs this builder still runs; one of them becomes current_job when the finished one was it.
 */
export function agentComplete(store: Store, c: Completion, now: () => Date, others: Job[], dashboard?: DashboardContext): Promise<TxOutcome<Job>> {
  const stillRunning = others.length;
  return store.transact({
    op: 'complete',
    reads: [PATHS.jobs, PATHS.status(c.builder)],
    softReads: dashboard ? healthDashboardReads(dashboard.builders) : undefined,
    mutate: (view) => {
      const t = now();
      const r = jobs.complete(view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs(), c.id, c.builder, c.attempt, c.status, t, c.result);
      const status = statusOf(view, c.builder, t);
      const state: BuilderState = stillRunning > 0 ? 'building' : c.status === 'completed' ? 'success' : 'failed';
      const next = withState(status, state, t, {
        current_job: stillRunning === 0 ? null : status.current_job && status.current_job.id !== c.id ? status.current_job : currentJobOf(others[0]!),
        last_build: { id: c.id, status: c.status, completed_at: t.toISOString(), duration_seconds: c.durationSeconds, artifacts: c.artifacts },
      });
      return {
        result: r.job,
        writes: { [PATHS.jobs]: r.file, [PATHS.status(c.builder)]: next, ...c.extra, ...dashboardWrites(view, dashboard, t, { jobs: r.file, statuses: { [c.builder]: next } }) },
        raw: c.raw,
        message: `${c.status} ${c.id} on ${c.builder} (attempt ${c.attempt}): ${String(c.result.summary ?? '').slice(0, 100)}`,
        trailers: { 'Coord-Job': c.id, 'Coord-Attempt': String(c.attempt), 'Coord-Result': c.status },
      };
    },
  });
}

/** Give a running job back to the queue: on a drain, or after a restart found it orphaned. */
export function agentHandBack(store: Store, id: string, builder: string, attempt: number, now: () => Date, why = 'draining'): Promise<TxOutcome<Job>> {
  return store.transact({
    op: 'hand-back',
    reads: [PATHS.jobs],
    mutate: (view) => {
      const r = jobs.handBack(view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs(), id, builder, attempt, now());
      return { result: r.job, writes: { [PATHS.jobs]: r.file }, message: `hand back ${id} from ${builder} (attempt ${attempt}, ${why})`, trailers: { 'Coord-Job': id } };
    },
  });
}

export function setState(store: Store, builder: string, state: BuilderState, now: () => Date, agentVersion: string): Promise<TxOutcome<boolean>> {
  return store.transact({
    op: 'status',
    reads: [PATHS.status(builder)],
    mutate: (view) => {
      const t = now();
      const status = statusOf(view, builder, t);
      if (status.status === state) return { result: false };
      const next = withState(status, state, t, { agent_version: agentVersion, ...(state === 'offline' || state === 'idle' ? { current_job: null } : {}) });
      return { result: true, writes: { [PATHS.status(builder)]: next }, message: `${builder} ${state}` };
    },
  });
}

/** Take expired jobs of stale builders back to the queue and say so in a message, in one commit. */
export function agentReclaim(
  store: Store,
  a: { self: string; heartbeats: Map<string, HeartbeatFile>; leaseMs: number; maxReclaims: number; now: () => Date; ids: (n: number) => string[] },
): Promise<TxOutcome<jobs.Reclaim[]>> {
  return store.transact({
    op: 'reclaim',
    reads: [PATHS.jobs, PATHS.messages],
    mutate: (view) => {
      const t = a.now();
      const r = jobs.reclaimExpired(view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs(), a.heartbeats, t, a.leaseMs, a.maxReclaims, a.self);
      if (!r.reclaimed.length) return { result: [] };
      const messages = view.get<MessagesFile>(PATHS.messages) ?? { $schema: '../schemas/messages.schema.json', version: 1 as const, messages: [] };
      const ids = a.ids(r.reclaimed.length);
      const added: Message[] = r.reclaimed.map((rc, i) => ({
        id: ids[i]!,
        from: a.self,
        to: 'all',
        type: rc.failed ? 'error' : 'warning',
        subject: rc.failed ? `${rc.job.id} failed: reclaimed too often` : rc.job.status === 'cancelled' ? `${rc.job.id} cancelled: its builder ${rc.from} went silent` : `reclaimed ${rc.job.id} from ${rc.from}`,
        body:
          rc.failed || rc.job.status === 'cancelled'
            ? `${rc.job.result?.summary ?? ''}`
            : `${rc.from} stopped heartbeating and its lease on ${rc.job.id} (attempt ${rc.job.attempt}) ran out; the job is queued again (reclaim ${rc.job.reclaims}).`,
        timestamp: t.toISOString(),
        read: false,
      }));
      return {
        result: r.reclaimed,
        writes: { [PATHS.jobs]: r.file, [PATHS.messages]: { ...messages, messages: [...messages.messages, ...added] } },
        message: `reclaim ${r.reclaimed.map((x) => x.job.id).join(', ')} from stale builders`,
        trailers: { 'Coord-Job': r.reclaimed.map((x) => x.job.id).join(' ') },
      };
    },
  });
}

/** Unread messages for a builder, oldest first, leaving out the ones it sent itself. */
export function unreadFrom(file: MessagesFile, builder: string): Message[] {
  return msgs
    .inbox(file, builder, { unread: true })
    .filter((m) => m.from !== builder)
    .reverse();
}

export interface InboxResult {
  /** Messages for this builder it had not read, now read. */
  seen: Message[];
  replies: Message[];
  /** Requests left unread because this commit ran out of reply ids: the next round answers them. */
  left: number;
}

/**
 * Reads the builder's unread messages (to it or to all) in one commit, and
 * answers the built-in requests: `status` and `ping`. The status text comes
 * from the caller (it knows what it is running); ids are drawn before.
 */
export function agentInbox(store: Store, a: { builder: string; now: () => Date; ids: string[]; statusText: () => string }): Promise<TxOutcome<InboxResult>> {
  return store.transact<InboxResult>({
    op: 'read',
    reads: [PATHS.messages],
    mutate: (view) => {
      let file = view.get<MessagesFile>(PATHS.messages) ?? msgs.emptyMessages();
      const unread = unreadFrom(file, a.builder);
      if (!unread.length) return { result: { seen: [], replies: [], left: 0 } };
      const replies: Message[] = [];
      const seen: Message[] = [];
      let next = 0;
      for (const m of unread) {
        const kind = m.type === 'request' ? m.subject.trim().toLowerCase() : null;
        const answerable = (kind === 'status' || kind === 'ping') && m.from !== a.builder;
        // Out of reply ids for this commit: the request stays unread and is answered by the next one, never read unanswered.
        if (answerable && next >= a.ids.length) continue;
        file = msgs.markRead(file, m.id, a.builder).file;
        seen.push(m);
        if (answerable) {
          const body = kind === 'ping' ? `pong from ${a.builder}` : a.statusText();
          const sent = msgs.send(file, { to: m.from, type: 'info', subject: `re: ${m.subject}`.slice(0, 200), body, in_reply_to: m.id }, a.ids[next++]!, a.builder, a.now());
          file = sent.file;
          replies.push(sent.message);
        }
      }
      return {
        result: { seen, replies, left: unread.length - seen.length },
        writes: { [PATHS.messages]: file },
        message: `${a.builder} read ${seen.length} message(s)${replies.length ? `, answered ${replies.length}` : ''}`,
        trailers: { 'Coord-Message': seen.map((m) => m.id).join(' ') },
      };
    },
  });
}
