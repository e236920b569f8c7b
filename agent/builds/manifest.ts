// The manifest every finished job leaves: what ran, from which source and
// commit, how it ended and what it made. The executor gathers the facts as the
// job goes (a refused job has few of them); the agent pushes the result as
// <builder>/manifests/<job>.json in the completion commit.

import type { Job } from '../model/types.js';
import type { Artifact } from './artifacts.js';
import type { StepRecord } from './step.js';

export interface ManifestFacts {
  job: Pick<Job, 'id' | 'attempt' | 'type' | 'branch'>;
  builder: string | null;
  /** Already redacted; null when the job named none and there is no default. */
  source: string | null;
  /** null when it never resolved: refused, a failed checkout, a type with no checkout. */
  commit: string | null;
  status: 'completed' | 'failed' | 'cancelled';
  summary: string;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
  mode: string | null;
  steps: StepRecord[];
  artifactsDir: string | null;
  artifacts: Artifact[];
  /** The job type's own findings (the distcc report, the smoke test's hosts...). */
  details?: Record<string, unknown>;
}

export function jobManifest(f: ManifestFacts): Record<string, unknown> {
  const manifest: Record<string, unknown> = {
    job: f.job.id,
    attempt: f.job.attempt,
    builder: f.builder,
    type: f.job.type,
    source: f.source,
    branch: f.job.branch,
    commit: f.commit,
    status: f.status,
    summary: f.summary,
    started_at: f.startedAt.toISOString(),
    finished_at: f.finishedAt.toISOString(),
    duration_seconds: Math.round(f.durationMs / 100) / 10,
    mode: f.mode,
    steps: f.steps,
    artifacts_dir: f.artifactsDir,
    artifacts: f.artifacts,
  };
  // Beside the facts, never over them: a type's "steps" or "status" must not
  // change what the manifest says ran or how the job ended.
  for (const [k, v] of Object.entries(f.details ?? {})) if (!(k in manifest)) manifest[k] = v;
  return manifest;
}
