// The dashboard's transactions: keeping shared/health_dashboard.json current
// (called by the agents), and the write actions of `dashboard --allow-actions`
// (pause, resume, cancel, retry) through the same pure model functions the CLI
// uses.

import { UsageError } from '../errors.js';
import { healthChanged, sameSummary, summarize } from '../model/dashboard.js';
import { NAME_RE, parseJobId, parseName } from '../model/input.js';
import * as jobs from '../model/jobs.js';
import { NOT_BUILDER_DIRS, PATHS, type HealthDashboardFile, type HeartbeatFile, type Job, type JobsFile, type StatusFile } from '../model/types.js';
import { heartbeatsByBuilder } from '../store/heartbeat.js';
import { builderDirs, ROOT } from '../store/layout.js';
import { jobAction, setPause } from '../store/ops.js';
import type { Store, TxOutcome, TxView } from '../store/store.js';

// ---------------------------------------------------------------- shared/health_dashboard.json


/** The reads a transaction needs to plan the health dashboard for these builder names. */
export function healthDashboardReads(builders: Iterable<string>): string[] {
  const names = [...new Set(builders)].filter((b) => NAME_RE.test(b) && !NOT_BUILDER_DIRS.has(b)).sort();
  return [PATHS.dashboard, PATHS.jobs, ROOT, ...names.map((b) => PATHS.status(b))];
}

/** Thrown inside mutate when main has builder directories the reads did not cover. */
export class MoreReadsNeeded extends Error {
  constructor(readonly names: string[]) {
    super(`health dashboard: also read ${names.join(', ')}`);
  }
}

export interface DashboardPlanArgs {
  /** Builder names whose status files are among the view's reads (see healthDashboardReads). */
  builders: Iterable<string>;
  heartbeats: ReadonlyMap<string, HeartbeatFile>;
  now: Date;
  /** A heartbeat older than this is stale: the agents' lease. */
  staleAfterMs: number;
  /** The state this same transaction is about to write (a claim's jobs and status), if any. */
  pending?: { jobs?: JobsFile; statuses?: Record<string, StatusFile> };
  /** Rewrite only when a builder the file lists changed health (the agents' periodic check); else on any change. */
  onHealthChange?: boolean;
}

/**
 * The writes that bring shared/health_dashboard.json up to date with the view
 * (plus what the caller's transaction is about to write): {} when the
 * canonical content would not change. Pure; for use inside a mutate. Builders
 * are those with a status file on main (from the root listing) or a heartbeat.
 */
export function planHealthDashboard(view: TxView, a: DashboardPlanArgs): { writes: Record<string, HealthDashboardFile>; summary: HealthDashboardFile } {
  const read = new Set(a.builders);
  const onMain = builderDirs(view);
  const missing = onMain.filter((n) => !read.has(n));
  if (missing.length) throw new MoreReadsNeeded(missing);
  const statuses = new Map<string, StatusFile | undefined>();
  for (const name of read) {
    const s = a.pending?.statuses?.[name] ?? view.get<StatusFile>(PATHS.status(name));
    if (s) statuses.set(name, s);
  }
  for (const [name, s] of Object.entries(a.pending?.statuses ?? {})) statuses.set(name, s);
  const file = a.pending?.jobs ?? view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs();
  const summary = summarize(statuses, a.heartbeats, file, a.now, a.staleAfterMs);
  const current = view.get<HealthDashboardFile>(PATHS.dashboard);
  const write = a.onHealthChange ? healthChanged(current, summary) : !sameSummary(current, summary);
  return { writes: write ? { [PATHS.dashboard]: summary } : {}, summary };
}

export interface UpdateHealthDashboardArgs {
  /** The agents' lease: a heartbeat older than this is stale. */
  staleAfterMs: number;
  /** Commit only when a listed builder's health changed (see DashboardPlanArgs). */
  onHealthChange?: boolean;
  /** Heartbeats already read (e.g. by the agent's recovery check); read fresh when omitted. */
  heartbeats?: ReadonlyMap<string, HeartbeatFile>;
  now?: () => Date;
}

/** Builder names seen on main per store, so the next update needs no second round. */
const knownNames = new WeakMap<Store, Set<string>>();

/**
 * One transaction that rewrites shared/health_dashboard.json only when its
 * canonical content changes: the plan has no writes (and nothing is committed
 * or pushed) otherwise. The result says whether it changed and what it says.
 */
export async function updateHealthDashboard(store: Store, args: UpdateHealthDashboardArgs): Promise<TxOutcome<{ changed: boolean; summary: HealthDashboardFile }>> {
  const now = args.now ?? (() => new Date());
  const heartbeats = args.heartbeats ?? (await heartbeatsByBuilder(store));
  const names = knownNames.get(store) ?? new Set<string>();
  knownNames.set(store, names);
  for (const b of heartbeats.keys()) names.add(b);
  // Builder directories are only known once main's root is listed: the first
  // update of a process may need a second round with their status files.
  for (let round = 0; ; round++) {
    try {
      return await store.transact<{ changed: boolean; summary: HealthDashboardFile }>({
        op: 'dashboard',
        reads: healthDashboardReads(names),
        mutate: (view) => {
          const p = planHealthDashboard(view, { builders: names, heartbeats, now: now(), staleAfterMs: args.staleAfterMs, onHealthChange: args.onHealthChange });
          const changed = Object.keys(p.writes).length > 0;
          if (!changed) return { result: { changed, summary: p.summary } };
          const q = p.summary.queue;
          return {
            result: { changed, summary: p.summary },
            writes: p.writes,
            message: `health dashboard: ${Object.keys(p.summary.builders).length} builders; ${q.queued} queued, ${q.running} running, ${q.failed} failed`,
          };
        },
      });
    } catch (e) {
      if (!(e instanceof MoreReadsNeeded) || round >= 3) throw e;
      for (const n of e.names) names.add(n);
    }
  }
}

// ---------------------------------------------------------------- actions

export type DashboardAction = { action: 'cancel' | 'retry'; job: string } | { action: 'pause' | 'resume'; builder: string | null };

/** Checks a POST body from the page; a UsageError names what is wrong. */
export function parseAction(body: unknown): DashboardAction {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('the body must be a JSON object {"action": ..., "job"|"builder": ...}');
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).filter((k) => !['action', 'job', 'builder'].includes(k));
  if (extra.length) throw new UsageError(`unknown field ${JSON.stringify(extra[0])}`);
  switch (b.action) {
    case 'cancel':
    case 'retry':
      if (b.builder !== undefined) throw new UsageError(`${b.action} takes "job", not "builder"`);
      return { action: b.action, job: parseJobId(b.job, '"job"') };
    case 'pause':
    case 'resume':
      if (b.job !== undefined) throw new UsageError(`${b.action} takes "builder" (or nothing for the whole fleet), not "job"`);
      return { action: b.action, builder: b.builder === undefined || b.builder === null ? null : parseName(b.builder, '"builder"') };
    default:
      throw new UsageError('"action" must be one of pause, resume, cancel, retry');
  }
}

export interface ActionOutcome {
  action: DashboardAction['action'];
  job?: string;
  builder?: string | null;
  changed: boolean;
  /** One line for the person who clicked. */
  message: string;
  status?: Job['status'];
}

export async function runAction(store: Store, a: DashboardAction, by: string, now: Date): Promise<ActionOutcome> {
  if ('job' in a) {
    const r = await jobAction(store, a.action, a.job, by, now);
    const j = r.result;
    const message =
      a.action === 'retry'
        ? `${j.id} queued again; its next run is attempt ${j.attempt + 1}`
        : j.status === 'cancelled'
          ? `${j.id} cancelled; it will not run`
          : `${j.id} is running on ${j.assigned_to}: cancel requested; its builder stops it`;
    return { action: a.action, job: j.id, changed: r.commit !== null, message, status: j.status };
  }
  const target = a.builder;
  const paused = a.action === 'pause';
  const r = await setPause(store, target, paused, by, now);
  const who = target ?? 'the fleet';
  const message = r.result ? `${paused ? 'paused' : 'resumed'} ${who}` : `${who} was ${paused ? 'already paused' : 'not paused'}; nothing changed`;
  return { action: a.action, builder: target, changed: r.result, message };
}
