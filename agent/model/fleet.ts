// The fleet at a glance, computed from main's status files, the heartbeat
// branches and the queue. Pure: the caller reads, this only judges.

import type { BuildConfigFile, HeartbeatFile, JobsFile, StatusFile } from './types.js';

export type Health = 'healthy' | 'degraded' | 'stale' | 'offline' | 'unknown';

export interface BuilderRow {
  builder: string;
  health: Health;
  state: string;
  heartbeat_age_seconds: number | null;
  current_job: string | null;
  current_job_seconds: number | null;
  agent_version: string | null;
  degraded_reasons: string[];
  distcc_mode: string | null;
}

export interface QueueSummary {
  queued: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export function judgeBuilder(builder: string, status: StatusFile | undefined, hb: HeartbeatFile | undefined, now: Date, staleAfterMs: number): BuilderRow {
  const age = hb ? Math.max(0, Math.round((now.getTime() - Date.parse(hb.timestamp)) / 1000)) : null;
  let health: Health;
  if (status?.status === 'offline' && (!hb || !hb.healthy)) health = 'offline';
  else if (!hb || age === null || Number.isNaN(age)) health = 'unknown';
  else if (age * 1000 > staleAfterMs) health = 'stale';
  else if (!hb.healthy) health = 'degraded';
  else health = 'healthy';
  const started = status?.current_job?.started_at ? Date.parse(status.current_job.started_at) : NaN;
  return {
    builder,
    health,
    state: status?.status ?? 'unknown',
    heartbeat_age_seconds: age,
    current_job: status?.current_job?.id ?? null,
    current_job_seconds: Number.isNaN(started) ? null : Math.max(0, Math.round((now.getTime() - started) / 1000)),
    agent_version: hb?.agent_version ?? status?.agent_version ?? null,
    degraded_reasons: hb?.degraded_reasons ?? [],
    distcc_mode: hb?.distcc_mode ?? null,
  };
}

export function summarizeQueue(file: JobsFile): QueueSummary {
  const s: QueueSummary = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const j of file.jobs) s[j.status]++;
  return s;
}

/** Whether a builder may claim: paused on its own, or with the whole fleet (shared/build_config.json "control"). */
export function isPaused(config: BuildConfigFile | undefined, builder: string): { paused: boolean; by?: string | null } {
  const c = config?.control;
  if (!c) return { paused: false };
  const own = c.builders?.[builder];
  if (own?.paused) return { paused: true, by: own.paused_by };
  if (c.paused) return { paused: true, by: c.paused_by };
  return { paused: false };
}
