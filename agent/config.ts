// Settings come from three places, later ones overriding earlier ones: the
// config file (/etc/buildcoord/agent.json unless told otherwise), the
// environment (BUILDCOORD_*), and flags. Only the file is validated against
// its schema here; flags and environment are checked by the model's parsers.

import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';
import { formatProblem, validateConfig } from './model/validate.js';

export const DEFAULT_CONFIG = '/etc/buildcoord/agent.json';

export interface FileConfig {
  builder?: string;
  repo?: string;
  home?: string;
  poll?: string;
  heartbeat?: string;
  lease?: string;
  grace?: string;
  concurrency?: number;
  labels?: Record<string, string>;
  /** DISTCC_HOSTS syntax; the agent's --distcc-hosts / BUILDCOORD_DISTCC_HOSTS override it. */
  distcc_hosts?: string;
  /** distcc-pump to use for pump mode (default: distcc-pump on PATH), e.g. one with a fixed include server. */
  distcc_pump?: string;
  /** distcc source directory or tarball that `buildcoord pump restore` rebuilds the include server from (scripts/get-distcc-source.sh fetches one). */
  distcc_source?: string;
  /** Directory of *.patch files applied to distcc_source (default: the package's patches/distcc/). */
  distcc_patches?: string;
  /** Base of <builder>/<type>/<timestamp>/ artifact directories (default /root/artifacts); --artifacts-dir / BUILDCOORD_ARTIFACTS_DIR override it. */
  artifacts_dir?: string;
  log_level?: string;
  max_reclaims?: number;
  redact?: string[];
  types?: Record<string, { command: string; args: string[]; timeout_seconds?: number }>;
  maven?: {
    /** Goals of a maven job that asks for none (default ["package"]). */
    goals?: string[];
    allowed_goals?: string[];
    allowed_profiles?: string[];
    /** mvn -s (default /etc/maven/settings-debian.xml). */
    settings?: string;
    /** mvn -o (default true). */
    offline?: boolean;
  };
}

/**
 * Reads the config file. A missing default file is fine (a person's laptop has
 * none); a missing file that was named explicitly, or any invalid file, is a
 * usage error naming the file and field.
 */
export function loadConfigFile(path: string | undefined, env: NodeJS.ProcessEnv = process.env): { path: string | null; config: FileConfig } {
  const named = path ?? env.BUILDCOORD_CONFIG;
  const file = named ?? DEFAULT_CONFIG;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (!named && (e as NodeJS.ErrnoException).code === 'ENOENT') return { path: null, config: {} };
    throw new UsageError(`${file}: cannot read config file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: /: not valid JSON (${(e as Error).message})`);
  }
  const problems = validateConfig(doc, file);
  if (problems.length) throw new UsageError(formatProblem(problems[0]!) + (problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''));
  return { path: file, config: doc as FileConfig };
}
