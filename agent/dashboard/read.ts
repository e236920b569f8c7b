// Reads everything the dashboard shows in one pass over the store's private
// clone: main's files (one fetch), the heartbeat branches (one fetch) and the
// last commits of main for the event list. Read-only: nothing is written.

import { dashboardData, EVENT_LOG_FORMAT, parseEvents, type CoordEvent, type DashboardData } from '../model/dashboard.js';
import { emptyJobs } from '../model/jobs.js';
import { NOT_BUILDER_DIRS, PATHS, type BuildConfigFile, type HeartbeatFile, type JobsFile, type LocksFile, type MessagesFile, type StatusFile } from '../model/types.js';
import { formatProblem, parseAndValidate } from '../model/validate.js';
import { readHeartbeats } from '../store/heartbeat.js';
import type { Store } from '../store/store.js';

const STATUS_RE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/status\.json$/;
const FILES = new Set<string>([PATHS.jobs, PATHS.messages, PATHS.locks, PATHS.buildConfig]);

export interface ReadOptions {
  now: () => Date;
  staleAfterMs: number;
  actionsEnabled?: boolean;
  /** Commits of main to look at for events. */
  eventCommits?: number;
}

function isStatusPath(p: string): boolean {
  const m = STATUS_RE.exec(p);
  return m !== null && !NOT_BUILDER_DIRS.has(m[1]!);
}

/** The last commits of origin/main in the store's clone, as events (after a snapshot fetched it). */
export async function readEvents(store: Store, commits = 200): Promise<CoordEvent[]> {
  const i = await store.internals();
  const r = await i.git(i.cloneDir, ['log', '-n', String(commits), `--format=${EVENT_LOG_FORMAT}`, 'refs/remotes/origin/main', '--']);
  // No main yet (an empty remote) is no events, not an error.
  return r.exitCode === 0 ? parseEvents(r.stdout, commits) : [];
}

export async function readDashboard(store: Store, opts: ReadOptions): Promise<DashboardData> {
  const snap = await store.snapshot((p) => FILES.has(p) || isStatusPath(p));
  const problems: string[] = [];
  const statuses = new Map<string, StatusFile | undefined>();
  const docs = new Map<string, unknown>();
  for (const [path, buf] of snap.files) {
    const { doc, problems: found } = parseAndValidate(path, buf.toString('utf8'));
    if (found.length) problems.push(formatProblem(found[0]!) + (found.length > 1 ? ` (and ${found.length - 1} more)` : ''));
    const m = STATUS_RE.exec(path);
    if (m && isStatusPath(path)) statuses.set(m[1]!, found.length ? undefined : (doc as StatusFile));
    else if (!found.length) docs.set(path, doc);
  }
  const heartbeats = new Map<string, HeartbeatFile>();
  for (const h of await readHeartbeats(store)) {
    if (h.doc) heartbeats.set(h.builder, h.doc);
    else if (h.problem) problems.push(h.problem);
  }
  const events = snap.commit ? await readEvents(store, opts.eventCommits ?? 200) : [];
  return dashboardData({
    statuses,
    heartbeats,
    jobs: (docs.get(PATHS.jobs) as JobsFile | undefined) ?? emptyJobs(),
    messages: docs.get(PATHS.messages) as MessagesFile | undefined,
    locks: docs.get(PATHS.locks) as LocksFile | undefined,
    config: docs.get(PATHS.buildConfig) as BuildConfigFile | undefined,
    events,
    problems: problems.sort(),
    commit: snap.commit,
    now: opts.now(),
    staleAfterMs: opts.staleAfterMs,
    actionsEnabled: opts.actionsEnabled,
  });
}
