// What the dashboard shows and what shared/health_dashboard.json says, as pure
// functions of the coordination files, the heartbeats, the commit log and the
// time. The callers read (agent/dashboard/read.ts, ops.ts); this only judges.

import { canonicalJson } from './canonical.js';
import { judgeBuilder, summarizeQueue, type Health, type QueueSummary } from './fleet.js';
import { blocker, compareQueue, runOrder } from './jobs.js';
import type { BuildConfigFile, BuilderState, HealthDashboardFile, HeartbeatFile, Job, JobsFile, LocksFile, MessagesFile, StatusFile } from './types.js';

export const HEALTH_DASHBOARD_SCHEMA_REF = '../schemas/health_dashboard.schema.json';

// ---------------------------------------------------------------- shared/health_dashboard.json

/** Every builder that has a status file or a heartbeat, sorted. */
export function builderNames(statuses: ReadonlyMap<string, StatusFile | undefined>, heartbeats: ReadonlyMap<string, HeartbeatFile>): string[] {
  return [...new Set([...statuses.keys(), ...heartbeats.keys()])].sort();
}

/**
 * The fleet summary kept in shared/health_dashboard.json. Only what changes
 * with the fleet's state goes in (no timestamps, no heartbeat ages), so the
 * same fleet always gives the same bytes and an unchanged fleet writes nothing.
 */
export function summarize(
  statuses: ReadonlyMap<string, StatusFile | undefined>,
  heartbeats: ReadonlyMap<string, HeartbeatFile>,
  jobs: JobsFile,
  now: Date,
  staleAfterMs: number,
): HealthDashboardFile {
  const builders: HealthDashboardFile['builders'] = {};
  for (const name of builderNames(statuses, heartbeats)) {
    const status = statuses.get(name);
    const row = judgeBuilder(name, status, heartbeats.get(name), now, staleAfterMs);
    builders[name] = {
      state: row.state as BuilderState | 'unknown',
      health: row.health,
      current_job: row.current_job,
      last_build: status?.last_build?.id ?? null,
    };
  }
  return { $schema: HEALTH_DASHBOARD_SCHEMA_REF, version: 1, builders, queue: summarizeQueue(jobs) };
}

/** Same content, whatever the key order or formatting of either side. */
export function sameSummary(a: HealthDashboardFile | undefined, b: HealthDashboardFile): boolean {
  return a !== undefined && canonicalJson(a) === canonicalJson(b);
}

/**
 * Whether a builder the recorded summary lists has changed health (or gone).
 * Builders it does not list yet, or lists as unknown (no heartbeat seen yet:
 * one starting up), and queue counts wait for the next job commit.
 */
export function healthChanged(recorded: HealthDashboardFile | undefined, next: HealthDashboardFile): boolean {
  if (recorded === undefined) return false;
  return Object.entries(recorded.builders).some(([name, b]) => b.health !== 'unknown' && next.builders[name]?.health !== b.health);
}

// ---------------------------------------------------------------- events from `git log`

/** Ops that are bookkeeping, not something a person watching the fleet wants to see. */
const QUIET_OPS = new Set(['message-read', 'message-ack', 'renew', 'lock-renew']);

export interface CoordEvent {
  commit: string;
  at: string;
  /** Coord-Op; null for a commit without trailers (a hand edit). */
  op: string | null;
  /** What happened, for the page's colour: the op, or for a completion its result. */
  kind: string;
  jobs: string[];
  builder: string | null;
  attempt: number | null;
  subject: string;
}

/** The git log format parseEvents reads: fields split by 0x1f, records ended by 0x1e. */
export const EVENT_LOG_FORMAT = '%H%x1f%cI%x1f%s%x1f%(trailers:only,unfold)%x1e';

/** Commits of main (newest first, as `git log --format=EVENT_LOG_FORMAT` prints them) as events. */
export function parseEvents(log: string, limit = 200): CoordEvent[] {
  const out: CoordEvent[] = [];
  for (const record of log.split('\x1e')) {
    const [sha, date, subject, trailerText] = record.replace(/^\s+/, '').split('\x1f');
    if (!sha || !/^[0-9a-f]{40}$/.test(sha) || date === undefined) continue;
    const trailers = new Map<string, string>();
    for (const line of (trailerText ?? '').split('\n')) {
      const m = /^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$/.exec(line.trim());
      if (m && !trailers.has(m[1]!.toLowerCase())) trailers.set(m[1]!.toLowerCase(), m[2]!.trim());
    }
    const op = trailers.get('coord-op') ?? null;
    if (op !== null && QUIET_OPS.has(op)) continue;
    const result = trailers.get('coord-result');
    const t = Date.parse(date);
    const attempt = Number(trailers.get('coord-attempt'));
    out.push({
      commit: sha,
      at: Number.isNaN(t) ? date : new Date(t).toISOString(),
      op,
      kind: op === 'complete' && result ? result : op ?? 'edit',
      jobs: (trailers.get('coord-job') ?? '').split(/\s+/).filter((j) => /^job_[A-Za-z0-9_-]{1,80}$/.test(j)),
      builder: trailers.get('coord-builder') || null,
      attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : null,
      subject: subject ?? '',
    });
    if (out.length >= limit) break;
  }
  return out;
}

// ---------------------------------------------------------------- the page's data (/api/fleet)

export interface BuilderCard {
  builder: string;
  health: Health;
  state: string;
  heartbeat_at: string | null;
  heartbeat_age_seconds: number | null;
  current_job: { id: string; type: string | null; description: string | null; started_at: string | null; elapsed_seconds: number | null; attempt: number | null } | null;
  agent_version: string | null;
  distcc_mode: string | null;
  degraded_reasons: string[];
  paused: boolean;
  last_build: { id: string; status: string; completed_at: string; duration_seconds: number } | null;
  system: { cpu_usage: number | null; memory_used_gb: number | null; disk_free_gb: number | null } | null;
}

export interface QueueItem {
  id: string;
  type: string;
  status: 'running' | 'queued';
  priority: number;
  description: string;
  branch: string;
  commit: string | null;
  assigned_to: string | null;
  attempt: number;
  created_at: string;
  started_at: string | null;
  /** Running: since it started; queued: since it was queued. */
  elapsed_seconds: number | null;
  /** Why a queued job cannot start yet: waiting for dependencies, a failed dependency; null when it can. */
  blocked: string | null;
  on: string | null;
  cancel_requested: boolean;
}

export interface HistoryItem {
  id: string;
  type: string;
  status: 'completed' | 'failed' | 'cancelled';
  builder: string | null;
  attempt: number;
  description: string;
  started_at: string | null;
  completed_at: string;
  duration_seconds: number | null;
  summary: string | null;
}

export interface DurationSeries {
  type: string;
  builds: Array<{ id: string; status: string; completed_at: string; duration_seconds: number }>;
}

export interface DashboardData {
  version: 1;
  generated_at: string;
  commit: string | null;
  stale_after_seconds: number;
  actions_enabled: boolean;
  fleet: { paused: boolean; paused_by: string | null; paused_at: string | null };
  builders: BuilderCard[];
  queue: { counts: QueueSummary; jobs: QueueItem[] };
  history: HistoryItem[];
  durations: DurationSeries[];
  messages: Array<{ id: string; from: string; to: string; type: string; subject: string; body: string; timestamp: string; read: boolean; ack_required: boolean }>;
  locks: Array<{ name: string; locked_by: string; locked_at: string; expires_at: string; token: number; note: string | null; expired: boolean }>;
  events: CoordEvent[];
  /** Files that could not be read (invalid JSON or schema), one line each. */
  problems: string[];
}

export interface DashboardInputs {
  statuses: ReadonlyMap<string, StatusFile | undefined>;
  heartbeats: ReadonlyMap<string, HeartbeatFile>;
  jobs: JobsFile;
  messages?: MessagesFile;
  locks?: LocksFile;
  config?: BuildConfigFile;
  events?: CoordEvent[];
  problems?: string[];
  commit: string | null;
  now: Date;
  staleAfterMs: number;
  actionsEnabled?: boolean;
  limits?: { history?: number; perType?: number; messages?: number; events?: number };
}

const seconds = (fromIso: string | null | undefined, to: number): number | null => {
  const t = fromIso ? Date.parse(fromIso) : NaN;
  return Number.isNaN(t) ? null : Math.max(0, Math.round((to - t) / 1000));
};

function durationOf(j: Job): number | null {
  const own = j.result?.duration_seconds;
  if (typeof own === 'number' && Number.isFinite(own) && own >= 0) return Math.round(own * 10) / 10;
  if (!j.started_at || !j.completed_at) return null;
  const d = (Date.parse(j.completed_at) - Date.parse(j.started_at)) / 1000;
  return Number.isFinite(d) && d >= 0 ? Math.round(d * 10) / 10 : null;
}

const isFinished = (j: Job): j is Job & { status: 'completed' | 'failed' | 'cancelled'; completed_at: string } =>
  (j.status === 'completed' || j.status === 'failed' || j.status === 'cancelled') && typeof j.completed_at === 'string';

export function dashboardData(inp: DashboardInputs): DashboardData {
  const now = inp.now.getTime();
  const lim = { history: 50, perType: 30, messages: 30, events: 100, ...inp.limits };
  const byId = new Map(inp.jobs.jobs.map((j) => [j.id, j]));
  const control = inp.config?.control;

  const builders: BuilderCard[] = builderNames(inp.statuses, inp.heartbeats).map((name) => {
    const status = inp.statuses.get(name);
    const hb = inp.heartbeats.get(name);
    const row = judgeBuilder(name, status, hb, inp.now, inp.staleAfterMs);
    const cur = status?.current_job ?? null;
    const job = cur ? byId.get(cur.id) : undefined;
    const system = hb?.system ?? status?.system ?? null;
    return {
      builder: name,
      health: row.health,
      state: row.state,
      heartbeat_at: hb?.timestamp ?? null,
      heartbeat_age_seconds: row.heartbeat_age_seconds,
      current_job: cur
        ? { id: cur.id, type: job?.type ?? null, description: job?.description ?? null, started_at: cur.started_at ?? null, elapsed_seconds: row.current_job_seconds, attempt: cur.attempt ?? job?.attempt ?? null }
        : null,
      agent_version: row.agent_version,
      distcc_mode: row.distcc_mode,
      degraded_reasons: row.degraded_reasons,
      paused: control?.builders?.[name]?.paused === true,
      last_build: status?.last_build ? { id: status.last_build.id, status: status.last_build.status, completed_at: status.last_build.completed_at, duration_seconds: status.last_build.duration_seconds } : null,
      system: system ? { cpu_usage: system.cpu_usage ?? null, memory_used_gb: system.memory_used_gb ?? null, disk_free_gb: system.disk_free_gb ?? null } : null,
    };
  });

  const queue: QueueItem[] = runOrder(inp.jobs)
    .filter((j) => j.status === 'running' || j.status === 'queued')
    .map((j) => {
      const b = j.status === 'queued' ? blocker(inp.jobs, j) : null;
      return {
        id: j.id,
        type: j.type,
        status: j.status as 'running' | 'queued',
        priority: j.priority,
        description: j.description,
        branch: j.branch,
        commit: j.commit,
        assigned_to: j.assigned_to,
        attempt: j.attempt,
        created_at: j.created_at,
        started_at: j.started_at,
        elapsed_seconds: seconds(j.status === 'running' ? j.started_at : j.created_at, now),
        blocked: j.cancel_requested ? null : b,
        on: j.on ?? null,
        cancel_requested: j.cancel_requested === true,
      };
    });

  const finished = inp.jobs.jobs.filter(isFinished).sort((a, b) => (a.completed_at < b.completed_at ? 1 : a.completed_at > b.completed_at ? -1 : compareQueue(a, b)));
  const history: HistoryItem[] = finished.slice(0, lim.history).map((j) => ({
    id: j.id,
    type: j.type,
    status: j.status,
    builder: j.assigned_to,
    attempt: j.attempt,
    description: j.description,
    started_at: j.started_at,
    completed_at: j.completed_at,
    duration_seconds: durationOf(j),
    summary: typeof j.result?.summary === 'string' ? j.result.summary : null,
  }));

  // Builds that ran (a job cancelled before it started has no duration to draw).
  const perType = new Map<string, DurationSeries['builds']>();
  for (const j of finished) {
    const d = durationOf(j);
    if (d === null || !j.started_at) continue;
    const list = perType.get(j.type) ?? [];
    if (list.length < lim.perType) list.push({ id: j.id, status: j.status, completed_at: j.completed_at, duration_seconds: d });
    perType.set(j.type, list);
  }
  const durations = [...perType.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([type, builds]) => ({ type, builds: builds.reverse() }));

  const messages = [...(inp.messages?.messages ?? [])]
    .sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0))
    .slice(0, lim.messages)
    .map((m) => ({ id: m.id, from: m.from, to: m.to, type: m.type, subject: m.subject, body: m.body, timestamp: m.timestamp, read: m.read, ack_required: m.ack_required === true }));

  const locks = Object.entries(inp.locks?.locks ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, l]) => ({ name, locked_by: l.locked_by, locked_at: l.locked_at, expires_at: l.expires_at, token: l.token, note: l.note ?? null, expired: Date.parse(l.expires_at) <= now }));

  return {
    version: 1,
    generated_at: inp.now.toISOString(),
    commit: inp.commit,
    stale_after_seconds: Math.round(inp.staleAfterMs / 1000),
    actions_enabled: inp.actionsEnabled === true,
    fleet: { paused: control?.paused === true, paused_by: control?.paused ? control.paused_by ?? null : null, paused_at: control?.paused ? control.paused_at ?? null : null },
    builders,
    queue: { counts: summarizeQueue(inp.jobs), jobs: queue },
    history,
    durations,
    messages,
    locks,
    events: (inp.events ?? []).slice(0, lim.events),
    problems: inp.problems ?? [],
  };
}
