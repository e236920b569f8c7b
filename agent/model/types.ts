// The coordination data layout as TypeScript types. schemas/*.schema.json are
// the contract a person editing by hand sees; these types mirror them and the
// schema tests keep the two honest.

export type Iso = string; // ISO 8601 UTC, always with a trailing Z

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface JobResult {
  /** One line a person can act on: why it failed, what mode it ran in. */
  summary?: string;
  exit_code?: number | null;
  duration_seconds?: number;
  log?: string | null; // path in the coordination repository
  manifest?: string | null;
  [extra: string]: unknown;
}

export interface Job {
  id: string;
  type: string;
  /** 1 is the highest priority, 10 the lowest. */
  priority: number;
  source: string | null;
  branch: string;
  commit: string | null;
  description: string;
  dependencies: string[];
  assigned_to: string | null;
  status: JobStatus;
  created_at: Iso;
  created_by: string;
  started_at: Iso | null;
  completed_at: Iso | null;
  /** How many times the job has been claimed; every claim increments it and
   * every later write about the job must name the attempt it belongs to. */
  attempt: number;
  lease_expires_at: Iso | null;
  /** Times the job was taken back from a builder that stopped heartbeating. */
  reclaims?: number;
  /** Pin to one builder. */
  on?: string | null;
  /** Builder labels the job needs, all of them. */
  labels?: Record<string, string>;
  timeout_seconds?: number | null;
  /** How many times a failed attempt may be retried automatically. */
  retries?: number;
  /** How many of those automatic retries were used (a manual retry starts again at 0). */
  retried?: number;
  cancel_requested?: boolean;
  result?: JobResult | null;
}

export interface JobsFile {
  $schema?: string;
  version: 1;
  jobs: Job[];
}

export interface Lock {
  locked_by: string;
  locked_at: Iso;
  expires_at: Iso;
  /** Fencing token: strictly larger for every new holder of any lock. */
  token: number;
  note?: string;
}

export interface LocksFile {
  $schema?: string;
  version: 1;
  /** The next fencing token to hand out; never goes down, even on release. */
  next_token: number;
  locks: Record<string, Lock>;
}

export const MESSAGE_TYPES = ['info', 'warning', 'error', 'request'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface Message {
  id: string;
  from: string;
  /** A builder name, a person, or "all". */
  to: string;
  type: MessageType;
  subject: string;
  body: string;
  timestamp: Iso;
  /** True once the addressee has read it; for "all", see read_by. */
  read: boolean;
  read_by?: string[];
  ack_required?: boolean;
  acked_by?: string[];
  in_reply_to?: string | null;
}

export interface MessagesFile {
  $schema?: string;
  version: 1;
  messages: Message[];
}

export const BUILDER_STATES = ['idle', 'building', 'failed', 'success', 'paused', 'offline'] as const;
export type BuilderState = (typeof BUILDER_STATES)[number];

export interface SystemInfo {
  cpu_usage: number | null;
  memory_used_gb: number | null;
  disk_free_gb: number | null;
  load?: number[] | null;
}

export interface StatusFile {
  $schema?: string;
  server: string;
  timestamp: Iso;
  status: BuilderState;
  current_job: { id: string; branch: string; commit: string | null; started_at: Iso; attempt?: number } | null;
  last_build: {
    id: string;
    status: 'completed' | 'failed' | 'cancelled';
    completed_at: Iso;
    duration_seconds: number;
    artifacts: string[];
  } | null;
  system: SystemInfo;
  agent_version?: string;
  labels?: Record<string, string>;
}

export interface HeartbeatFile {
  $schema?: string;
  server: string;
  timestamp: Iso;
  uptime_seconds: number;
  healthy: boolean;
  degraded_reasons?: string[];
  system?: SystemInfo;
  agent_version?: string;
  current_jobs?: string[];
  /** Lease renewals ride on the heartbeat, off main. */
  leases?: Array<{ id: string; attempt: number; expires_at: Iso }>;
  distcc_mode?: 'pump' | 'pump-broken' | 'distcc' | 'local' | null;
}

export interface ProfileJob {
  /** Name of this step inside the profile; `after` refers to these. */
  key: string;
  type: string;
  priority?: number;
  after?: string[];
  description?: string;
  source?: string | null;
  on?: string | null;
  labels?: Record<string, string>;
  timeout_seconds?: number | null;
  retries?: number;
}

export interface BuildConfigFile {
  $schema?: string;
  version: 1;
  default_source: string | null;
  defaults: { priority: number; branch: string; timeout_seconds: number | null; retries: number };
  profiles: Record<string, { description?: string; jobs: ProfileJob[] }>;
  control?: {
    paused: boolean;
    paused_by?: string | null;
    paused_at?: Iso | null;
    builders?: Record<string, { paused: boolean; paused_by?: string | null; paused_at?: Iso | null }>;
  };
}

export interface HealthDashboardFile {
  $schema?: string;
  version: 1;
  builders: Record<
    string,
    { state: BuilderState | 'unknown'; health: 'healthy' | 'stale' | 'offline' | 'degraded' | 'unknown'; current_job: string | null; last_build: string | null }
  >;
  queue: { queued: number; running: number; completed: number; failed: number; cancelled: number };
}

/** Top-level directories of the layout that are not builders' (every other one is a builder's). */
export const NOT_BUILDER_DIRS: ReadonlySet<string> = new Set(['coordination', 'shared', 'schemas', 'scripts']);

/** Paths of the coordination files, relative to the repository root. */
export const PATHS = {
  jobs: 'coordination/jobs.json',
  locks: 'coordination/locks.json',
  messages: 'coordination/messages.json',
  buildConfig: 'shared/build_config.json',
  dashboard: 'shared/health_dashboard.json',
  status: (builder: string) => `${builder}/status.json`,
  heartbeat: (builder: string) => `${builder}/heartbeat.json`,
} as const;
