// What a build kind (maven, deb, make) gets from the executor and gives back.
// Every process goes through StepContext.run: the one runner, no shell, the
// job's log, its redactor, its deadline and its stop signal.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { FileConfig } from '../config.js';
import type { Job } from '../model/types.js';
import type { RunResult } from './runner.js';

/** A job refused before anything ran: its branch, commit, goals... are not acceptable here. */
export class RefusedError extends Error {}

export interface StepRecord {
  name: string;
  command: string;
  args: string[];
  exit_code: number | null;
  duration_seconds: number;
  summary: string;
}

export interface StepContext {
  job: Job;
  /** The checkout: <job dir>/src. */
  dir: string;
  /** The job's own directory: the checkout's parent, where dpkg-buildpackage writes. */
  base: string;
  config: FileConfig;
  env: Record<string, string | undefined>;
  logFile: string;
  redact: (line: string) => string;
  /** A [buildcoord] line in the job's log. */
  note(line: string): Promise<void>;
  /** Runs one process in the job's log; records it for the manifest. */
  run(name: string, command: string, args: string[], opts?: { env?: Record<string, string | undefined>; cwd?: string; logFile?: string; timeoutMs?: number }): Promise<RunResult>;
  signal: AbortSignal;
  /** distcc-pump to use when the config names none; null: the one on PATH. */
  pump?: string | null;
}

export interface StepOutcome {
  ok: boolean;
  /** One line: what happened. */
  summary: string;
  exitCode: number | null;
  /** Stopped by the signal (cancel, drain, fencing). */
  aborted?: boolean;
  /** Files to publish as artifacts if the whole job succeeds. */
  files: string[];
  mode?: string;
  details?: Record<string, unknown>;
}

export function failed(summary: string, r?: RunResult): StepOutcome {
  return { ok: false, summary, exitCode: r?.exitCode ?? null, aborted: r?.aborted ?? false, files: [] };
}

/** The program's path if it is on PATH (as the build will see it). */
export function which(name: string, env: Record<string, string | undefined> = process.env): string | null {
  if (name.includes('/')) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return null;
    }
  }
  for (const d of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}
