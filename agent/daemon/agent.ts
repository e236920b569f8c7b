// The builder daemon. It never dies on bad data or a lost remote: it logs,
// reports itself degraded in its heartbeat, and carries on with what it can.
//
//   poll (ls-remote; fetch only when main moved) -> fence/cancel running jobs
//   -> take back expired jobs of stale builders -> claim up to concurrency
//   heartbeat (own branch, off main) -> renews the leases of running jobs
//   completion -> one commit; kept on disk and retried while the remote is away

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { freemem, loadavg, totalmem, cpus } from 'node:os';
import { join } from 'node:path';
import type { FileConfig } from '../config.js';
import { CoordError, InvalidFileError, PreconditionError } from '../errors.js';
import { eligible, isStale, newId } from '../model/jobs.js';
import { PATHS, type BuildConfigFile, type HeartbeatFile, type Job, type JobsFile, type MessagesFile } from '../model/types.js';
import { executeJob, supportedTypes, type ExecDeps, type ExecResult } from '../builds/execute.js';
import { runProcess, type ProcessRunner } from '../builds/runner.js';
import { pumpCommand } from '../builds/pump.js';
import { HeartbeatWriter, heartbeatsByBuilder } from '../store/heartbeat.js';
import type { Store } from '../store/store.js';
import { agentClaim, agentComplete, agentHandBack, agentInbox, agentReclaim, setState, unreadFrom, type Completion, type DashboardContext } from './transitions.js';
import { every, type Stoppable } from './schedule.js';
import { updateHealthDashboard } from '../dashboard/ops.js';
import { builderDirs, ROOT } from '../store/layout.js';
import { GroupRecords, stopGroups } from './orphans.js';

export interface AgentSettings {
  builder: string;
  pollMs: number;
  heartbeatMs: number;
  leaseMs: number;
  graceMs: number;
  concurrency: number;
  labels: Record<string, string>;
  maxReclaims: number;
  /** Source caches, workspaces, full logs, pending results. */
  workDir: string;
  /** BUILDCOORD_HOME (the managed pump install lives under it). */
  home: string;
  config: FileConfig;
  version: string;
}

const DISTCC_MODES = new Set(['pump', 'pump-broken', 'distcc', 'local']);

/** All CPUs' time counters (ms): the whole machine's, as /proc/stat counts them. */
function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface AgentDeps {
  store: Store;
  log: Logger;
  clock?: () => Date;
  runner?: ProcessRunner;
  execute?: (job: Job, signal: AbortSignal, deps: ExecDeps) => Promise<ExecResult>;
}

type StopReason = 'cancel' | 'fenced' | 'drain';

interface Running {
  job: Job;
  abort: AbortController;
  reason: StopReason | null;
  done: Promise<void>;
}

/** At most this much of a log's tail is committed; the full log stays on the builder. */
export const LOG_TAIL_BYTES = 256 * 1024;

export class Agent {
  private s: AgentSettings;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly clock: () => Date;
  private readonly runner: ProcessRunner;
  private readonly execute: NonNullable<AgentDeps['execute']>;
  private readonly hb: HeartbeatWriter;
  private readonly running = new Map<string, Running>();
  private pending: Completion[] = [];
  private readonly degraded = new Map<string, string>();
  private timers: Stoppable[] = [];
  private draining = false;
  private lastTip: string | null | undefined = undefined;
  private nextRecoveryAt = 0;
  private lastRecoveryCheck = 0;
  private defaultSource: string | null = null;
  private remoteDownSince = 0;
  private readonly startedAt = Date.now();
  private stopped: Promise<void> | null = null;

  constructor(settings: AgentSettings, deps: AgentDeps) {
    this.s = settings;
    this.store = deps.store;
    this.log = deps.log;
    this.clock = deps.clock ?? (() => new Date());
    this.runner = deps.runner ?? runProcess;
    this.groups = new GroupRecords(join(settings.workDir, 'groups'));
    this.execute = deps.execute ?? executeJob;
    this.hb = new HeartbeatWriter(this.store, settings.builder);
  }

  get settings(): AgentSettings {
    return this.s;
  }

  private degrade(key: string, reason: string | null): void {
    if (reason === null) {
      if (this.degraded.delete(key)) this.log.info({ key }, 'recovered');
      return;
    }
    if (this.degraded.get(key) !== reason) this.log.warn({ key, reason }, 'degraded');
    this.degraded.set(key, reason);
  }

  private get pendingDir(): string {
    return join(this.s.workDir, 'pending');
  }

  /** A status transition of its own (idle, offline) in one commit, logged like every transaction. */
  private async setState(state: 'idle' | 'offline'): Promise<void> {
    const r = await setState(this.store, this.s.builder, state, this.clock, this.s.version);
    if (r.result) this.log.info({ op: 'status', state, pushAttempts: r.pushAttempts }, `status ${state}`);
  }

  private readonly groups: GroupRecords;
  /** Set once the first look at main after start has dealt with what a previous process left running. */
  private orphansChecked = false;

  /**
   * Jobs main says this builder runs that this process did not start: left by
   * a previous agent that died (SIGKILL, crash, OOM). Their recorded process
   * groups are stopped and the jobs handed back (a new attempt, elsewhere or
   * here); a result waiting on disk is pushed instead by flushPending.
   */
  private async recoverOrphans(file: JobsFile): Promise<void> {
    const records = await this.groups.list();
    const waiting = new Set(this.pending.map((c) => `${c.id}-${c.attempt}`));
    const orphans = file.jobs.filter((j) => j.status === 'running' && j.assigned_to === this.s.builder && !this.running.has(j.id) && !waiting.has(`${j.id}-${j.attempt}`));
    const grace = Math.min(this.s.graceMs, 10_000);
    for (const rec of records) {
      if (this.running.has(rec.job)) continue;
      const stopped = await stopGroups(rec.groups, grace);
      if (stopped) this.log.warn({ job: rec.job, attempt: rec.attempt, groups: stopped }, 'stopped build processes left by a previous agent');
    }
    for (const j of orphans) {
      const r = await agentHandBack(this.store, j.id, this.s.builder, j.attempt, this.clock, 'orphaned: its agent restarted');
      this.log.warn({ op: 'hand-back', job: j.id, attempt: j.attempt, status: r.result.status, pushAttempts: r.pushAttempts }, 'job left running by a previous agent handed back');
      this.wantClaim = true;
    }
    for (const rec of records) if (!this.running.has(rec.job)) await this.groups.remove(rec.job, rec.attempt);
    if (orphans.length && this.running.size === 0) await this.setState('idle');
    this.orphansChecked = true;
  }

  async start(): Promise<void> {
    await mkdir(this.pendingDir, { recursive: true });
    for (const f of (await readdir(this.pendingDir)).filter((n) => n.endsWith('.json'))) {
      try {
        this.pending.push(JSON.parse(await readFile(join(this.pendingDir, f), 'utf8')) as Completion);
      } catch (e) {
        this.log.error({ file: f, err: (e as Error).message }, 'unreadable pending result kept aside');
      }
    }
    if (this.pending.length) this.log.info({ count: this.pending.length }, 'results from before a restart are waiting to be pushed');
    const kept = (await readFile(this.distccModeFile, 'utf8').catch(() => '')).trim();
    if (DISTCC_MODES.has(kept)) this.distccMode = kept as NonNullable<HeartbeatFile['distcc_mode']>;
    this.log.info(
      { remote: this.store.remote, pollMs: this.s.pollMs, heartbeatMs: this.s.heartbeatMs, leaseMs: this.s.leaseMs, concurrency: this.s.concurrency, types: supportedTypes(this.s.config) },
      'agent starting',
    );
    await this.heartbeat().catch(() => {});
    await this.tick();
    // A SIGTERM during the first heartbeat or poll has drained and stopped us
    // already: starting the timers now would heartbeat on after "offline" and
    // keep the process alive for ever.
    if (this.draining) return;
    this.schedule();
  }

  private schedule(): void {
    for (const t of this.timers) t.stop();
    const onError = (e: unknown) => this.log.error({ err: (e as Error).message }, 'scheduled work failed');
    this.timers = [every(this.s.pollMs, () => this.tick(), onError, { spread: true }), every(this.s.heartbeatMs, () => this.heartbeat(), onError)];
  }

  /** SIGHUP: new settings from the config file; running jobs go on. */
  reload(settings: AgentSettings): void {
    // The store, the state directories and the logger were made at start: say so rather than ignore a change quietly.
    const fixed: string[] = [];
    if (settings.builder !== this.s.builder) fixed.push('builder');
    if (settings.home !== this.s.home) fixed.push('home');
    if ((settings.config.repo ?? null) !== (this.s.config.repo ?? null)) fixed.push('repo');
    if ((settings.config.log_level ?? null) !== (this.s.config.log_level ?? null)) fixed.push('log_level');
    if (fixed.length) this.log.warn({ keys: fixed }, 'these settings take effect only at a restart');
    this.s = { ...settings, workDir: this.s.workDir, builder: this.s.builder, home: this.s.home };
    this.log.info({ pollMs: this.s.pollMs, heartbeatMs: this.s.heartbeatMs, concurrency: this.s.concurrency, labels: this.s.labels }, 'config reloaded');
    if (!this.draining) this.schedule();
  }

  /** CPU time counters at the last heartbeat: usage is the busy share of the time since. */
  private lastCpu = cpuTimes();

  private systemInfo(): HeartbeatFile['system'] {
    const total = totalmem();
    const load = loadavg();
    const now = cpuTimes();
    const spent = now.total - this.lastCpu.total;
    const usage = spent > 0 ? (1 - (now.idle - this.lastCpu.idle) / spent) * 100 : 0;
    this.lastCpu = now;
    return {
      cpu_usage: Math.round(Math.min(100, Math.max(0, usage)) * 10) / 10,
      memory_used_gb: Math.round(((total - freemem()) / 2 ** 30) * 100) / 100,
      disk_free_gb: null,
      load: load.map((l) => Math.round(l * 100) / 100),
    };
  }

  /**
   * Heartbeats go out one at a time: two in flight (the timer's and the one
   * right after a claim) race each other's --force-with-lease, and the final
   * "offline" one must land after any healthy one still on its way.
   */
  private beating: Promise<void> = Promise.resolve();

  private heartbeat(final = false): Promise<void> {
    const next = this.beating.then(() => this.beatOnce(final));
    this.beating = next.catch(() => {});
    return next;
  }

  private async beatOnce(final: boolean): Promise<void> {
    const now = this.clock();
    const system = this.systemInfo()!;
    try {
      const fs = await statfs(this.s.workDir);
      system.disk_free_gb = Math.round(((fs.bavail * fs.bsize) / 2 ** 30) * 10) / 10;
    } catch {
      /* unknown */
    }
    const reasons = [...this.degraded.values()];
    const doc: HeartbeatFile = {
      $schema: '../schemas/heartbeat.schema.json',
      server: this.s.builder,
      timestamp: now.toISOString(),
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      healthy: !final && reasons.length === 0,
      degraded_reasons: final ? ['offline: clean shutdown'] : reasons,
      system,
      agent_version: this.s.version,
      current_jobs: final ? [] : [...this.running.keys()],
      distcc_mode: this.distccMode,
      leases: final
        ? []
        : [...this.running.values()].map((r) => ({ id: r.job.id, attempt: r.job.attempt, expires_at: new Date(now.getTime() + this.s.leaseMs).toISOString() })),
    };
    try {
      await this.hb.write(doc);
      this.degrade('heartbeat', null);
    } catch (e) {
      this.degrade('heartbeat', `heartbeat not pushed: ${(e as Error).message}`);
    }
  }

  /** The poll in progress, if any: drain waits for it, since it may be claiming a job. */
  private ticking: Promise<void> | null = null;

  /** One poll. Public so tests and `--once` can drive it. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    const run = (async () => {
      try {
        await this.pollOnce();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'poll failed');
      } finally {
        this.ticking = null;
      }
    })();
    this.ticking = run;
    await run;
  }

  private async pollOnce(): Promise<void> {
    if (Date.now() < this.remoteRetryAt) return; // backing off while the remote is away
    let tip: string | null;
    try {
      tip = await this.store.remoteTip();
      if (this.remoteDownSince) this.log.info({ downMs: Date.now() - this.remoteDownSince }, 'remote reachable again');
      this.remoteDownSince = 0;
      this.remoteFailures = 0;
      this.degrade('remote', null);
    } catch (e) {
      if (!this.remoteDownSince) this.remoteDownSince = Date.now();
      // Back off (doubling, with jitter) up to half a lease or a minute, whichever is less, but never below the poll:
      // a fleet whose server is down does not hammer it, and one that comes back is noticed soon.
      const cap = Math.max(this.s.pollMs, Math.min(60_000, this.s.leaseMs / 2));
      const wait = Math.min(cap, this.s.pollMs * 2 ** this.remoteFailures++) * (0.8 + Math.random() * 0.4);
      this.remoteRetryAt = Date.now() + wait;
      this.degrade('remote', (e as Error).message);
      return; // builds in progress go on; a later poll tries again
    }
    const now = Date.now();
    const recoveryDue = now >= this.nextRecoveryAt && now - this.lastRecoveryCheck >= Math.max(this.s.pollMs, this.s.leaseMs / 4);
    const dashboardDue = now >= this.nextDashboardAt;
    const lookForWork = this.wantClaim && this.running.size < this.s.concurrency && !this.draining;
    // Nothing moved on main, nothing to push, nobody to check on, no free slot that
    // has not looked at this main yet: nothing to do, and not even a fetch was spent.
    if (tip === this.lastTip && !this.pending.length && !recoveryDue && !lookForWork && !dashboardDue && this.orphansChecked) return;

    await this.flushPending();

    try {
      const view = await this.store.read([PATHS.jobs, PATHS.buildConfig, ROOT]);
      const file = view.get<JobsFile>(PATHS.jobs) ?? { version: 1, jobs: [] };
      this.defaultSource = view.get<BuildConfigFile>(PATHS.buildConfig)?.default_source ?? null;
      // Every builder on main, so that the first claim or completion already carries the health summary.
      for (const name of builderDirs(view)) this.dashBuilders.add(name);
      if (!this.orphansChecked) await this.recoverOrphans(file);
      this.checkRunning(file);
      if (tip !== this.lastTip) {
        this.wantClaim = true;
        await this.readInbox();
      }
      this.lastTip = tip;

      // Running jobs of other builders (or of nobody) are checked once their lease could have run out.
      const foreign = file.jobs.filter((j) => j.status === 'running' && j.assigned_to !== this.s.builder && (j.lease_expires_at || !j.assigned_to));
      const expiry = (j: Job) => (j.assigned_to && j.lease_expires_at ? Date.parse(j.lease_expires_at) : 0);
      this.nextRecoveryAt = foreign.length ? Math.min(...foreign.map(expiry)) : Infinity;
      if (recoveryDue && foreign.some((j) => expiry(j) <= now)) {
        this.lastRecoveryCheck = now;
        await this.recover();
      }
      await this.claimUpToConcurrency(file);
      this.degrade('data', null);
    } catch (e) {
      if (!(e instanceof InvalidFileError)) throw e;
      // A broken hand edit (jobs.json, build_config.json, our status.json, ...): claim
      // nothing, overwrite nothing, say why in the heartbeat, and wait for main to move.
      this.degrade('data', e.message);
      this.lastTip = tip;
      this.wantClaim = false;
      return;
    }
    if (dashboardDue) await this.refreshDashboard();
  }

  private remoteFailures = 0;
  private remoteRetryAt = 0;

  private nextDashboardAt = 0;

  /**
   * Claims and completions carry shared/health_dashboard.json, but a builder that
   * dies idle has no job commit to carry the news. So every half lease (the lease
   * judges staleness) one agent rewrites the file when a builder it lists changed
   * health: a commit per real transition (died, came back, degraded), never for
   * queue counts or a timestamp, which ride on the next job commit. One writer,
   * the first by name among builders with a fresh heartbeat, so two agents whose
   * clocks differ a little never take turns rewriting it.
   */
  private async refreshDashboard(): Promise<void> {
    this.nextDashboardAt = Date.now() + Math.max(this.s.pollMs, this.s.leaseMs / 2);
    try {
      const heartbeats = await heartbeatsByBuilder(this.store);
      const now = this.clock();
      const writer = [...heartbeats.entries()]
        .filter(([, h]) => !isStale(h, now, this.s.leaseMs))
        .map(([name]) => name)
        .sort()[0];
      if (writer !== this.s.builder) return;
      // lastTip stays: if main moved meanwhile, the next poll looks at it for work.
      const r = await updateHealthDashboard(this.store, { staleAfterMs: this.s.leaseMs, heartbeats, now: this.clock, onHealthChange: true });
      if (r.result.changed) {
        const b = r.result.summary.builders;
        this.log.info({ op: 'dashboard', health: Object.fromEntries(Object.entries(b).map(([n, x]) => [n, x.health])), queue: r.result.summary.queue, pushAttempts: r.pushAttempts }, 'health dashboard updated');
      }
    } catch (e) {
      // Only a summary: a broken file or an unreachable remote is reported by the poll itself.
      this.log.debug({ err: (e as Error).message }, 'health dashboard not refreshed');
    }
  }

  /** Logs each new message for this builder once, marks it read, answers status/ping requests. */
  private async readInbox(): Promise<void> {
    try {
      // The poll fetched main a moment ago: read the messages from that, not the network.
      const view = await this.store.read([PATHS.messages], { fetch: false });
      const file = view.get<MessagesFile>(PATHS.messages);
      if (!file || !unreadFrom(file, this.s.builder).length) {
        this.degrade('messages', null);
        return;
      }
      // Up to 8 replies per commit; a burst of requests takes a few commits, none is read unanswered.
      for (let round = 0; round < 10; round++) {
        const r = await agentInbox(this.store, {
          builder: this.s.builder,
          now: this.clock,
          ids: Array.from({ length: 8 }, () => newId('msg', this.clock(), randomBytes(5))),
          statusText: () =>
            `${this.s.builder}: ${this.running.size ? `building ${[...this.running.keys()].join(', ')}` : 'idle'}; healthy ${this.degraded.size === 0}${this.degraded.size ? ` (${[...this.degraded.values()].join('; ')})` : ''}; agent ${this.s.version}`,
        });
        for (const m of r.result.seen) this.log.info({ op: 'message', id: m.id, from: m.from, to: m.to, type: m.type, subject: m.subject }, 'message');
        for (const m of r.result.replies) this.log.info({ op: 'reply', id: m.id, to: m.to, in_reply_to: m.in_reply_to, pushAttempts: r.pushAttempts }, 'answered request');
        if (!r.result.left) break;
      }
      this.degrade('messages', null);
    } catch (e) {
      // A broken messages.json must not stop builds: say so and go on.
      this.degrade('messages', `messages not read: ${(e as Error).message}`);
    }
  }

  /** The distcc mode the last distributed build really ran in, for the fleet view. */
  private distccMode: HeartbeatFile['distcc_mode'] = null;

  private get distccModeFile(): string {
    return join(this.s.workDir, 'distcc_mode');
  }

  /** Kept on disk so a restarted agent reports the mode its last build found, not "unknown" until the next one. */
  private async setDistccMode(mode: NonNullable<HeartbeatFile['distcc_mode']>): Promise<void> {
    this.distccMode = mode;
    await writeFile(this.distccModeFile, `${mode}\n`).catch((e) => this.log.warn({ err: (e as Error).message }, 'could not keep the distcc mode on disk'));
  }

  /** A slot is free and has not yet looked at the current main for work. */
  private wantClaim = true;

  private readonly dashBuilders = new Set<string>();

  /** What the claim and completion commits need to keep shared/health_dashboard.json current; undefined if heartbeats cannot be read now. */
  private async dashboard(): Promise<DashboardContext | undefined> {
    try {
      const heartbeats = await heartbeatsByBuilder(this.store);
      this.dashBuilders.add(this.s.builder);
      return { builders: this.dashBuilders, heartbeats, staleAfterMs: this.s.leaseMs };
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'heartbeats not read: the health dashboard waits for the next commit');
      return undefined;
    }
  }

  private async claimUpToConcurrency(file: JobsFile): Promise<void> {
    const builder = { name: this.s.builder, labels: this.s.labels, types: supportedTypes(this.s.config) };
    // The heartbeats the dashboard summary needs are fetched only when main just
    // showed something to claim; most polls that see main move claim nothing.
    let dashboard: DashboardContext | undefined | null = eligible(file, builder).length ? null : undefined;
    while (!this.draining && this.running.size < this.s.concurrency) {
      if (dashboard === null) dashboard = await this.dashboard();
      const r = await agentClaim(this.store, {
        builder,
        leaseMs: this.s.leaseMs,
        now: this.clock,
        agentVersion: this.s.version,
        dashboard,
      });
      this.lastTip = this.store.lastKnownTip;
      if (!r.result || 'paused' in r.result) {
        this.wantClaim = false;
        if (r.result && 'paused' in r.result) this.log.debug({}, 'paused: claiming nothing');
        return;
      }
      this.log.info({ op: 'claim', job: r.result.id, attempt: r.result.attempt, type: r.result.type, pushAttempts: r.pushAttempts }, 'claimed');
      this.startJob(r.result);
      // The lease is renewed by the heartbeat: send one now rather than at the next tick.
      void this.heartbeat();
    }
  }

  private async recover(): Promise<void> {
    const heartbeats = await heartbeatsByBuilder(this.store);
    const r = await agentReclaim(this.store, {
      self: this.s.builder,
      heartbeats,
      leaseMs: this.s.leaseMs,
      maxReclaims: this.s.maxReclaims,
      now: this.clock,
      ids: (n) => Array.from({ length: n }, () => newId('msg', this.clock(), randomBytes(5))),
    });
    for (const rc of r.result) this.log.warn({ op: 'reclaim', job: rc.job.id, from: rc.from, failed: rc.failed, reclaims: rc.job.reclaims }, rc.failed ? 'job failed: reclaimed too often' : 'reclaimed job from stale builder');
    if (r.result.length) this.wantClaim = true;
  }

  /** Stop what the repository says should stop: a cancel, or a job that moved on (fencing). */
  private checkRunning(file: JobsFile): void {
    for (const [id, r] of this.running) {
      const job = file.jobs.find((j) => j.id === id);
      if (!job || job.status !== 'running' || job.assigned_to !== this.s.builder || job.attempt !== r.job.attempt) {
        if (!r.reason) {
          this.log.warn({ job: id, attempt: r.job.attempt, now: job ? `${job.status} attempt ${job.attempt} on ${job.assigned_to}` : 'gone' }, 'job moved on without us: stopping it and writing nothing (fenced)');
          r.reason = 'fenced';
          r.abort.abort();
        }
      } else if (job.cancel_requested && !r.reason) {
        this.log.info({ job: id }, 'cancel requested: stopping the build');
        r.reason = 'cancel';
        r.abort.abort();
      }
    }
  }

  private startJob(job: Job): void {
    const abort = new AbortController();
    const entry: Running = { job, abort, reason: null, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.execute(job, abort.signal, {
      // Every process group the build starts is recorded, for a restart to stop if this process dies.
      runner: (spec) =>
        this.runner({
          ...spec,
          onSpawn: (pid) => {
            try {
              this.groups.add(job.id, job.attempt, pid);
            } catch (e) {
              this.log.warn({ job: job.id, pid, err: (e as Error).message }, 'could not record a build process group');
            }
          },
        }),
      workDir: this.s.workDir,
      config: this.s.config,
      defaultSource: this.defaultSource,
      graceMs: Math.min(this.s.graceMs, 10_000),
      home: this.s.home,
      // Looked up per job: a pump restore takes effect at the next build, no restart.
      pump: pumpCommand(this.s.home),
    })
      .then((res) => this.finish(entry, res))
      .catch((e) => this.finish(entry, { status: 'failed', summary: `internal error: ${(e as Error).message}`, exitCode: null, durationMs: 0, commit: null, logFile: '' }))
      .catch((e) => this.log.error({ job: job.id, err: (e as Error).message }, 'could not record the end of a job'));
  }

  private async finish(entry: Running, res: ExecResult): Promise<void> {
    const { job } = entry;
    this.running.delete(job.id);
    this.wantClaim = true;
    await this.groups.remove(job.id, job.attempt).catch(() => {});
    if (entry.reason === 'fenced') {
      this.log.warn({ job: job.id, attempt: job.attempt }, 'fenced attempt ended; nothing written');
      // Nothing about the job, but our own status must stop saying we build it.
      if (this.running.size === 0) await this.setState('idle').catch(() => {});
      return;
    }
    if (entry.reason === 'drain') {
      try {
        const r = await agentHandBack(this.store, job.id, this.s.builder, job.attempt, this.clock);
        this.log.info({ op: 'hand-back', job: job.id, attempt: job.attempt, status: r.result.status, pushAttempts: r.pushAttempts }, 'handed back to the queue (drain)');
      } catch (e) {
        this.log.warn({ job: job.id, err: (e as Error).message }, 'could not hand back; its lease will run out and another builder will take it');
      }
      return;
    }
    const status = entry.reason === 'cancel' ? 'cancelled' : res.status;
    const distcc = res.details?.distcc as { mode?: 'pump' | 'distcc' | 'local'; pump_requested?: boolean } | undefined;
    if (distcc?.mode) await this.setDistccMode(distcc.pump_requested && distcc.mode !== 'pump' && distcc.mode !== 'local' ? 'pump-broken' : distcc.mode);
    // A restore ends with a pump build that served every include: pump works from the next build on.
    else if (job.type === 'pump-restore' && status === 'completed') await this.setDistccMode('pump');
    let tail = '';
    if (res.logFile) {
      try {
        const buf = await readFile(res.logFile);
        if (buf.length <= LOG_TAIL_BYTES) tail = buf.toString('utf8');
        else {
          // The note counts against the limit too: what is committed stays within LOG_TAIL_BYTES.
          const note = `[buildcoord] log truncated: the last part of ${buf.length} bytes; the full log is on ${this.s.builder} at ${res.logFile}\n`;
          const rest = buf.subarray(buf.length - (LOG_TAIL_BYTES - Buffer.byteLength(note))).toString('utf8');
          tail = note + rest.slice(rest.indexOf('\n') + 1);
        }
      } catch {
        /* no log */
      }
    }
    const logPath = `${this.s.builder}/logs/${job.id}.log`;
    const manifestPath = `${this.s.builder}/manifests/${job.id}.json`;
    const raw: Record<string, string> = {};
    if (tail) raw[logPath] = tail;
    if (res.manifest) raw[manifestPath] = JSON.stringify(res.manifest, null, 2) + '\n';
    const completion: Completion = {
      id: job.id,
      attempt: job.attempt,
      builder: this.s.builder,
      status,
      result: {
        summary: entry.reason === 'cancel' ? `cancelled while running: ${res.summary}` : res.summary,
        exit_code: res.exitCode,
        duration_seconds: Math.round(res.durationMs / 100) / 10,
        log: tail ? logPath : null,
        manifest: res.manifest ? manifestPath : null,
        commit: res.commit,
        ...res.details,
      },
      durationSeconds: Math.round(res.durationMs / 100) / 10,
      artifacts: res.artifacts ?? [],
      raw: Object.keys(raw).length ? raw : undefined,
    };
    this.log.info({ job: job.id, attempt: job.attempt, status, summary: completion.result.summary }, 'job finished');
    await this.persist(completion);
    this.pending.push(completion);
    await this.flushPending();
  }

  private pendingFile(c: Completion): string {
    return join(this.pendingDir, `${c.id}-${c.attempt}.json`);
  }

  private async persist(c: Completion): Promise<void> {
    await writeFile(this.pendingFile(c), JSON.stringify(c));
  }

  private flushing = false;

  private async flushPending(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      let dashboard: DashboardContext | undefined | null = null;
      while (this.pending.length) {
        const c = this.pending[0]!;
        try {
          if (dashboard === null) dashboard = await this.dashboard();
          const r = await agentComplete(this.store, c, this.clock, [...this.running.values()].map((x) => x.job), dashboard);
          this.log.info({ op: 'complete', job: c.id, attempt: c.attempt, result: c.status, pushAttempts: r.pushAttempts }, 'result pushed');
        } catch (e) {
          if (!(e instanceof PreconditionError)) {
            // Remote away or data broken: keep the result and try again at the next poll.
            this.degrade('pending', `${this.pending.length} result(s) not pushed yet: ${(e as Error).message}`);
            return;
          }
          this.log.warn({ job: c.id, attempt: c.attempt, err: e.message }, 'result refused (fenced): another attempt owns the job; nothing written');
        }
        this.pending.shift();
        await rm(this.pendingFile(c), { force: true });
        this.lastTip = this.store.lastKnownTip;
      }
      this.degrade('pending', null);
    } finally {
      this.flushing = false;
    }
  }

  /** SIGTERM/SIGINT: claim nothing more, let running jobs finish within the grace period, then stop and hand them back. */
  drain(): Promise<void> {
    return (this.stopped ??= this.drainOnce());
  }

  private async drainOnce(): Promise<void> {
    this.draining = true;
    this.log.info({ running: [...this.running.keys()], graceMs: this.s.graceMs }, 'draining');
    // A claim pushed by the poll in progress starts a job after this point:
    // let that poll end first, so the job is one we wait for and hand back.
    await this.ticking;
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.s.graceMs)));
    // Keep polling for cancels and fencing while waiting.
    if ((await Promise.race([all().then(() => 'done' as const), graceOver])) === 'timeout') {
      for (const r of this.running.values()) {
        if (!r.reason) {
          r.reason = 'drain';
          r.abort.abort();
        }
      }
      await all();
    }
    clearTimeout(timer);
    for (const t of this.timers) t.stop();
    this.timers = [];
    await this.flushPending().catch(() => {});
    try {
      await this.setState('offline');
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not push the offline status');
    }
    await this.heartbeat(true).catch(() => {});
    this.store.close();
    this.log.info({ pending: this.pending.length }, 'stopped');
  }
}

export function isCoordError(e: unknown): e is CoordError {
  return e instanceof CoordError;
}
