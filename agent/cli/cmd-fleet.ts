// `buildcoord status`, `control pause|resume`, `history`, and the job
// commands that act on one job: cancel, retry, log.

import type { Argv } from 'yargs';
import { OperationError, UsageError } from '../errors.js';
import { judgeBuilder, summarizeQueue } from '../model/fleet.js';
import * as jobs from '../model/jobs.js';
import { parseCount, parseDuration, parseJobId, parseName } from '../model/input.js';
import { PATHS, type BuildConfigFile, type HeartbeatFile, type JobsFile, type StatusFile } from '../model/types.js';
import { parseAndValidate } from '../model/validate.js';
import { readHeartbeats } from '../store/heartbeat.js';
import { jobAction, readJobs, setPause } from '../store/ops.js';
import type { Store } from '../store/store.js';
import type { Handler } from './cmd-jobs.js';
import type { Context } from './context.js';
import { ago, clean, span, table } from './format.js';

const STATUS_RE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/status\.json$/;

async function fleet(store: Store, now: Date, staleAfterMs: number) {
  const snap = await store.snapshot((p) => STATUS_RE.test(p) || p === PATHS.jobs);
  const statuses = new Map<string, StatusFile | undefined>();
  let file: JobsFile = jobs.emptyJobs();
  const problems: string[] = [];
  for (const [path, buf] of snap.files) {
    const { doc, problems: found } = parseAndValidate(path, buf.toString('utf8'));
    if (found.length) problems.push(`${path}: ${found[0]!.pointer}: ${found[0]!.message}`);
    if (path === PATHS.jobs) {
      if (!found.length) file = doc as JobsFile;
      continue;
    }
    const b = STATUS_RE.exec(path)![1]!;
    statuses.set(b, found.length ? undefined : (doc as StatusFile));
  }
  const beats = new Map<string, HeartbeatFile>();
  for (const h of await readHeartbeats(store)) {
    if (h.doc) beats.set(h.builder, h.doc);
    if (!statuses.has(h.builder)) statuses.set(h.builder, undefined);
  }
  const rows = [...statuses.keys()].sort().map((b) => judgeBuilder(b, statuses.get(b), beats.get(b), now, staleAfterMs));
  return { rows, queue: summarizeQueue(file), file, problems, commit: snap.commit };
}

/**
 * The builder `control pause|resume` acts on: --builder B (or --target B), else
 * the whole fleet. Here --builder names the subject, not who acts, so the
 * pause is recorded as made by BUILDCOORD_BUILDER, the config's builder or the user.
 */
function controlTarget(ctx: Context, target: string | undefined): string | null {
  const flag = ctx.args.builder;
  if (target !== undefined && flag !== undefined && target !== flag) throw new UsageError(`--target ${target} and --builder ${flag} name different builders: give one`);
  const name = target ?? flag;
  ctx.args.builder = undefined;
  return name === undefined ? null : parseName(name, target !== undefined ? '--target' : '--builder');
}

export function registerFleetCommands(y: Argv, handler: Handler): Argv {
  return y
    .command(
      'status',
      'One row per builder (health, heartbeat age, state, current job), then the queue',
      (a) =>
        a
          .option('stale-after', { type: 'string', default: '5m', describe: 'A heartbeat older than this is stale (use the agents\' --lease)' })
          .example('$0 status', 'the fleet at a glance')
          .example('$0 status --json', '{"builders": [...], "queue": {...}}'),
      handler(async (ctx, argv) => {
        const staleAfter = parseDuration(argv['stale-after'], '--stale-after');
        const now = ctx.io.clock();
        const f = await fleet(await ctx.store(), now, staleAfter);
        if (ctx.args.json) return ctx.json({ builders: f.rows, queue: f.queue, problems: f.problems, commit: f.commit });
        ctx.io.out(
          table(
            ['BUILDER', 'HEALTH', 'HEARTBEAT', 'STATE', 'JOB', 'RUNNING', 'VERSION', 'DISTCC'],
            f.rows.map((r) => [
              r.builder,
              r.health + (r.degraded_reasons.length && r.health === 'degraded' ? ` (${clean(r.degraded_reasons[0], 40)})` : ''),
              r.heartbeat_age_seconds === null ? '-' : `${span(r.heartbeat_age_seconds * 1000)} ago`,
              r.state,
              r.current_job ?? '-',
              r.current_job_seconds === null ? '-' : span(r.current_job_seconds * 1000),
              r.agent_version ?? '-',
              r.distcc_mode ?? '-',
            ]),
          ),
        );
        const q = f.queue;
        ctx.io.out(`\nqueue: ${q.queued} queued, ${q.running} running, ${q.completed} completed, ${q.failed} failed, ${q.cancelled} cancelled\n`);
        for (const p of f.problems) ctx.io.err(`warning: ${p}\n`);
      }),
    )
    .command('control', 'Pause or resume claiming, for one builder or the whole fleet', (c) =>
      c
        .command(
          'pause',
          'A paused builder (or fleet) claims nothing new; running jobs finish',
          (a) =>
            a
              .option('target', { type: 'string', describe: 'The builder to pause, same as --builder here (default: the whole fleet)' })
              .example('$0 control pause --builder build2', 'build2 claims nothing new')
              .example('$0 control pause', 'the whole fleet'),
          handler(async (ctx, argv) => {
            const target = controlTarget(ctx, argv.target as string | undefined);
            const { result } = await setPause(await ctx.store(), target, true, ctx.actor, ctx.io.clock());
            ctx.io.out(result ? `paused ${target ?? 'the fleet'}\n` : `${target ?? 'the fleet'} was already paused; nothing changed\n`);
          }),
        )
        .command(
          'resume',
          'Let a paused builder (or fleet) claim again',
          (a) =>
            a
              .option('target', { type: 'string', describe: 'The builder to resume, same as --builder here (default: the whole fleet)' })
              .example('$0 control resume --builder build2', '')
              .example('$0 control resume', 'the whole fleet'),
          handler(async (ctx, argv) => {
            const target = controlTarget(ctx, argv.target as string | undefined);
            const { result } = await setPause(await ctx.store(), target, false, ctx.actor, ctx.io.clock());
            ctx.io.out(result ? `resumed ${target ?? 'the fleet'}\n` : `${target ?? 'the fleet'} was not paused; nothing changed\n`);
          }),
        )
        .example('$0 control pause --builder build2', 'build2 finishes what it runs and claims nothing new')
        .example('$0 control resume', 'the whole fleet claims again')
        .demandCommand(1, 'name a control command: pause, resume'),
    )
    .command('profile', 'Named sets of jobs kept in shared/build_config.json', (p) =>
      p
        .command(
          'list',
          'The profiles and their steps',
          (a) => a.example('$0 profile list', ''),
          handler(async (ctx) => {
            const config = (await (await ctx.store()).read([PATHS.buildConfig])).get<BuildConfigFile>(PATHS.buildConfig);
            const profiles = config?.profiles ?? {};
            if (ctx.args.json) return ctx.json(Object.entries(profiles).map(([name, p]) => ({ name, description: p.description ?? '', jobs: p.jobs.length })));
            ctx.io.out(table(['PROFILE', 'JOBS', 'STEPS', 'DESCRIPTION'], Object.entries(profiles).map(([name, p]) => [name, String(p.jobs.length), p.jobs.map((j) => j.key).join(' -> '), clean(p.description, 50)])));
          }),
        )
        .command(
          'show <name>',
          'One profile: its steps, types and dependencies',
          (a) => a.positional('name', { type: 'string' }).example('$0 profile show release', ''),
          handler(async (ctx, argv) => {
            const name = parseName(argv.name, 'profile name');
            const config = (await (await ctx.store()).read([PATHS.buildConfig])).get<BuildConfigFile>(PATHS.buildConfig);
            const p = config?.profiles?.[name];
            if (!p) throw new UsageError(`no profile ${name} in shared/build_config.json`);
            if (ctx.args.json) return ctx.json({ name, ...p });
            ctx.io.out(`${name}${p.description ? `: ${clean(p.description, 200)}` : ''}\n`);
            ctx.io.out(table(['STEP', 'TYPE', 'PRI', 'AFTER'], p.jobs.map((j) => [j.key, j.type, String(j.priority ?? config!.defaults.priority), (j.after ?? []).join(', ') || '-'])));
          }),
        )
        .example('$0 profile list', '')
        .example('$0 job add --profile release --branch main', 'queue a whole profile')
        .demandCommand(1, 'name a profile command: list, show'),
    )
    .command(
      'history',
      'Finished jobs, newest first, with builder, duration and result',
      (a) => a.option('limit', { type: 'string', default: '20', describe: 'How many' }).example('$0 history --limit 50', ''),
      handler(async (ctx, argv) => {
        const limit = parseCount(argv.limit, '--limit', 1, 100_000);
        const file = await readJobs(await ctx.store());
        const done = file.jobs
          .filter((j) => j.completed_at && (j.status === 'completed' || j.status === 'failed' || j.status === 'cancelled'))
          .sort((a, b) => (a.completed_at! < b.completed_at! ? 1 : -1))
          .slice(0, limit);
        const dur = (j: (typeof done)[number]) => (j.started_at ? (Date.parse(j.completed_at!) - Date.parse(j.started_at)) / 1000 : null);
        if (ctx.args.json) return ctx.json(done.map((j) => ({ id: j.id, type: j.type, status: j.status, builder: j.assigned_to, attempt: j.attempt, completed_at: j.completed_at, duration_seconds: dur(j), summary: j.result?.summary ?? null })));
        const now = ctx.io.clock();
        ctx.io.out(
          table(
            ['ID', 'RESULT', 'TYPE', 'BUILDER', 'DURATION', 'FINISHED', 'SUMMARY'],
            done.map((j) => [j.id, j.status, j.type, j.assigned_to ?? '-', dur(j) === null ? '-' : span(dur(j)! * 1000), `${ago(j.completed_at, now)} ago`, clean(String(j.result?.summary ?? ''), 50)]),
          ),
        );
      }),
    );
}

/** job cancel / retry / log: added to the `job` group by cmd-jobs. */
export function registerJobActions(job: Argv, handler: Handler): Argv {
  const oneJob = (op: 'cancel' | 'retry') =>
    handler(async (ctx, argv) => {
      const id = parseJobId(argv.id);
      const r = await jobAction(await ctx.store(), op, id, ctx.actor, ctx.io.clock());
      const j = r.result;
      if (ctx.args.json) return ctx.json(j);
      if (op === 'cancel') ctx.io.out(j.status === 'cancelled' ? `${j.id} cancelled; it will not run\n` : `${j.id} is running on ${j.assigned_to}: cancel requested; its builder stops it\n`);
      else ctx.io.out(`${j.id} queued again; its next run is attempt ${j.attempt + 1}\n`);
    });
  return job
    .command(
      'cancel <id>',
      'A queued job never runs; a running one is stopped by its builder',
      (a) => a.positional('id', { type: 'string' }).example('$0 job cancel job_20261123T101500Z_3f9a1c2b7d', ''),
      oneJob('cancel'),
    )
    .command(
      'retry <id>',
      'A failed or cancelled job goes back to the queue as a new attempt',
      (a) => a.positional('id', { type: 'string' }).example('$0 job retry job_20261123T101500Z_3f9a1c2b7d', ''),
      oneJob('retry'),
    )
    .command(
      'log <id>',
      "The job's pushed log (the tail; the full log stays on its builder)",
      (a) =>
        a
          .positional('id', { type: 'string' })
          .example('$0 job log job_20261123T101500Z_3f9a1c2b7d', '')
          .example('$0 job log job_2026 --json', '{"id", "attempt", "status", "path", "log"}'),
      handler(async (ctx, argv) => {
        const id = parseJobId(argv.id);
        const store = await ctx.store();
        const view = await store.read([PATHS.jobs]);
        const job = jobs.findJob(view.get<JobsFile>(PATHS.jobs) ?? jobs.emptyJobs(), id);
        const path = typeof job.result?.log === 'string' ? job.result.log : null;
        if (!path || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\/logs\/job_[A-Za-z0-9_-]{1,80}\.log$/.test(path)) {
          throw new OperationError(`job ${job.id} has no pushed log yet (status ${job.status})`);
        }
        const buf = await store.readBlob(view.commit!, path);
        if (!buf) throw new OperationError(`${path} is not on main (pruned?)`);
        if (ctx.args.json) return ctx.json({ id: job.id, attempt: job.attempt, status: job.status, path, log: buf.toString('utf8') });
        ctx.io.out(buf.toString('utf8'));
      }),
    );
}

export { UsageError };
