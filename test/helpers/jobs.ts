// Job records for tests: one shape, each test overriding what its case is about.

import type { Job } from '../../agent/model/types.js';

/** A job as enqueue makes it (queued, never claimed), created at `created_at`, with fields overridden for the case at hand. */
export function queuedJob(id: string, created_at: string, over: Partial<Job> = {}): Job {
  return {
    id,
    type: 'make',
    priority: 5,
    source: null,
    branch: 'main',
    commit: null,
    description: '',
    dependencies: [],
    assigned_to: null,
    status: 'queued',
    created_at,
    created_by: 'tester',
    started_at: null,
    completed_at: null,
    attempt: 0,
    lease_expires_at: null,
    ...over,
  };
}

/** A job claimed a moment ago by build1 as attempt 1, as the executor is handed it. */
export function runningJob(id: string, over: Partial<Job> = {}): Job {
  const now = new Date().toISOString();
  return queuedJob(id, now, { assigned_to: 'build1', status: 'running', started_at: now, attempt: 1, ...over });
}
