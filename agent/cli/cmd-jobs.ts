// `buildcoord job ...`: parse, call one operation, print.

import type { Argv } from 'yargs';
import { OperationError, PreconditionError, UsageError } from '../errors.js';
import { blocker, findJob, indexJobs, runOrder } from '../model/jobs.js';
import { parseBranch, parseCommit, parseCount, parseDuration, parseJobId, parseLabel, parseName, parsePriority, parseSource, parseText, parseType } from '../model/input.js';
import { JOB_STATUSES, type Job } from '../model/types.js';
import { addJobs, addProfile, claimNext, completeJob, readJobs, type JobDraft } from '../store/ops.js';
import { builderDirs, ROOT } from '../store/layout.js';
import type { Context } from './context.js';
import { registerJobActions } from './cmd-fleet.js';
import { ago, clean, table } from './format.js';

type Run = (ctx: Context, argv: Record<string, unknown>) => Promise<void>;
export type Handler = (run: Run) => (argv: Record<string, unknown>) => Promise<void>;

function arr(v: unknown): unknown[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** The job's flags checked one by one, before any I/O; the first bad one is the error. Unset fields take the repository's defaults later. */
export function jobInput(argv: Record<string, unknown>): JobDraft {
  const labels: Record<string, string> = {};
  for (const l of arr(argv.label)) {
    const [k, v] = parseLabel(l);
    labels[k] = v;
  }
  return {
    type: parseType(argv.type ?? 'build'),
    priority: argv.priority === undefined ? undefined : parsePriority(argv.priority),
    source: argv.source === undefined ? undefined : parseSource(argv.source),
    branch: argv.branch === undefined ? undefined : parseBranch(argv.branch),
    commit: argv.commit === undefined ? null : parseCommit(argv.commit),
    description: argv.description === undefined ? '' : parseText(argv.description, '--description', 2000),
    dependencies: arr(argv.after).map((a) => parseJobId(a, '--after')),
    on: argv.on === undefined ? null : parseName(argv.on, '--on'),
    labels,
    timeout_seconds: argv.timeout === undefined ? undefined : Math.ceil(parseDuration(argv.timeout, '--timeout') / 1000),
    retries: argv.retries === undefined ? undefined : parseCount(argv.retries, '--retries', 0, 20),
  };
}

function describeJob(job: Job, now: Date): string {
  const rows: Array<[string, string]> = [
    ['id', job.id],
    ['type', job.type],
    ['status', job.status + (job.cancel_requested ? ' (cancel requested)' : '')],
    ['priority', `${job.priority} (1 is highest)`],
    ['source', clean(job.source, 200) || '(default)'],
    ['branch', clean(job.branch, 200)],
    ['commit', job.commit ?? '(branch head)'],
    ['description', clean(job.description, 200)],
    ['dependencies', job.dependencies.join(', ') || '-'],
    ['assigned_to', job.assigned_to ?? '-'],
    ['attempt', String(job.attempt)],
    ['created', `${job.created_at} by ${job.created_by}`],
    ['started_at', job.started_at ?? '-'],
    ['completed_at', job.completed_at ?? '-'],
    ['lease_expires_at', job.lease_expires_at ? `${job.lease_expires_at} (in ${ago(now.toISOString(), new Date(Date.parse(job.lease_expires_at)))})` : '-'],
  ];
  if (job.on) rows.push(['on', job.on]);
  if (job.labels && Object.keys(job.labels).length) rows.push(['labels', Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(' ')]);
  if (job.timeout_seconds) rows.push(['timeout', `${job.timeout_seconds}s`]);
  if (job.result?.summary) rows.push(['result', clean(String(job.result.summary), 200)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

export function registerJobCommands(y: Argv, handler: Handler): Argv {
  return y.command('job', 'Queue, inspect, claim and complete jobs', (job) =>
    registerJobActions(job, handler)
      .command(
        'add',
        'Queue a job; prints its id',
        (a) =>
          a
            .option('type', { type: 'string', describe: 'Job type (build, maven, deb, make, ...)', default: undefined })
            .option('source', { type: 'string', describe: 'Git URL or path of the source (default: shared/build_config.json)' })
            .option('branch', { type: 'string', describe: 'Branch to build (default from shared/build_config.json, else main)' })
            .option('commit', { type: 'string', describe: 'Exact commit, 7-40 hex digits (default: branch head)' })
            .option('priority', { type: 'string', describe: '1 (highest) to 10 (lowest); default 5' })
            .option('after', { type: 'string', array: true, describe: 'Run only after this job completed (repeatable)' })
            .option('on', { type: 'string', describe: 'Pin to one builder' })
            .option('label', { type: 'string', array: true, describe: 'Builder label the job needs, key=value (repeatable)' })
            .option('timeout', { type: 'string', describe: 'Stop the build after this long (e.g. 30m)' })
            .option('retries', { type: 'string', describe: 'Automatic retries after a failure (0-20)' })
            .option('description', { type: 'string', describe: 'Free text shown in listings' })
            .option('profile', { type: 'string', describe: 'Queue every job of this profile (shared/build_config.json) in one commit; takes --branch, --commit, --source' })
            .example('$0 job add --profile release --branch release/2.1 --commit 3f9a1c2', 'Maven, then Debian packages, then a distcc smoke test')
            .example('$0 job add --type maven --branch release/2.1 --priority 1', 'queue a Maven build ahead of everything else')
            .example('$0 job add --type deb --after job_20261123T101500Z_3f9a1c2b7d', 'package once that job completed'),
        handler(async (ctx, argv) => {
          if (argv.profile !== undefined) {
            const name = parseName(argv.profile, '--profile');
            for (const flag of ['type', 'priority', 'after', 'on', 'label', 'timeout', 'retries', 'description']) {
              if (argv[flag] !== undefined) throw new UsageError(`--${flag} cannot be combined with --profile (the profile sets it per job)`);
            }
            const over = {
              branch: argv.branch === undefined ? undefined : parseBranch(argv.branch),
              commit: argv.commit === undefined ? null : parseCommit(argv.commit),
              source: argv.source === undefined ? undefined : parseSource(argv.source),
            };
            const { result } = await addProfile(await ctx.store(), name, over, { clock: ctx.io.clock });
            if (ctx.args.json) ctx.json({ ids: result.map((j) => j.id) });
            else ctx.io.out(result.map((j) => `${j.id}  ${j.type}${j.dependencies.length ? `  after ${j.dependencies.join(', ')}` : ''}`).join('\n') + '\n');
            return;
          }
          const input = jobInput(argv);
          const store = await ctx.store();
          const { result } = await addJobs(store, [input], { clock: ctx.io.clock });
          const job = result[0]!;
          if (ctx.args.json) ctx.json({ id: job.id });
          else ctx.io.out(job.id + '\n');
          if (job.on) {
            // Queued all the same (a builder may join later), but a typo would otherwise wait for ever in silence.
            const known = builderDirs(await store.read([ROOT], { fetch: false }));
            if (!known.includes(job.on)) ctx.io.err(`warning: no builder ${job.on} on main yet (known: ${known.join(', ') || 'none'}): ${job.id} waits until one by that name starts\n`);
          }
        }),
      )
      .command(
        'list',
        'The queue in the order it will run',
        (a) =>
          a
            .option('status', { type: 'string', array: true, choices: [...JOB_STATUSES], describe: 'Only jobs in these states' })
            .option('assigned', { type: 'string', describe: 'Only jobs assigned to this builder (--builder B on this command does the same)' })
            .option('all', { type: 'boolean', describe: 'Include completed jobs (default: hidden unless --status asks)' })
            .example('$0 job list --status queued running', 'what is waiting and what is running')
            .example('$0 job list --json', 'an array of jobs (see README: JSON output)')
            .example('$0 job list --builder build1', 'the jobs build1 runs or ran'),
        handler(async (ctx, argv) => {
          const file = await readJobs(await ctx.store());
          const statuses = arr(argv.status) as string[];
          // --builder given on this command line filters too (people type it); from the environment or config it does not.
          const by = argv.assigned ?? ctx.args.builder;
          const assigned = by === undefined ? null : parseName(by, argv.assigned !== undefined ? '--assigned' : '--builder');
          const jobs = runOrder(file).filter(
            (j) =>
              (statuses.length ? statuses.includes(j.status) : argv.all || ctx.args.json || j.status !== 'completed') &&
              (assigned === null || j.assigned_to === assigned),
          );
          if (ctx.args.json) return ctx.json(jobs);
          const now = ctx.io.clock();
          const byId = indexJobs(file);
          ctx.io.out(
            table(
              ['ID', 'STATUS', 'PRI', 'TYPE', 'BRANCH', 'ASSIGNED', 'ATT', 'AGE', 'NOTE'],
              jobs.map((j) => [
                j.id,
                j.status,
                String(j.priority),
                j.type,
                clean(j.branch, 30),
                j.assigned_to ?? '-',
                String(j.attempt),
                ago(j.created_at, now),
                j.status === 'queued' ? (blocker(file, j, undefined, byId) ?? '') : clean(String(j.result?.summary ?? ''), 40),
              ]),
            ),
          );
        }),
      )
      .command(
        'show <id>',
        'One job in full',
        (a) => a.positional('id', { type: 'string', describe: 'Job id (a unique prefix is enough)' }).example('$0 job show job_20261123T101500Z_3f9a1c2b7d', ''),
        handler(async (ctx, argv) => {
          const id = parseJobId(argv.id);
          const job = findJob(await readJobs(await ctx.store()), id);
          if (ctx.args.json) ctx.json(job);
          else ctx.io.out(describeJob(job, ctx.io.clock()));
        }),
      )
      .command(
        'claim',
        'Claim the best eligible job for a builder (what the agent does); exit 1 if none',
        (a) =>
          a
            .option('lease', { type: 'string', default: '10m', describe: 'How long the claim holds without renewal' })
            .option('label', { type: 'string', array: true, describe: "This builder's labels, key=value" })
            .example('$0 job claim --builder build1 --json', 'claim one job and print it'),
        handler(async (ctx, argv) => {
          const builder = ctx.requireBuilder();
          const leaseMs = parseDuration(argv.lease, '--lease');
          const labels = Object.fromEntries(arr(argv.label).map((l) => parseLabel(l)));
          try {
            const { result: job } = await claimNext(await ctx.store(), { name: builder, labels }, leaseMs, { clock: ctx.io.clock });
            if (ctx.args.json) ctx.json(job);
            else ctx.io.out(`${job.id} attempt ${job.attempt} (${job.type}, ${job.branch}) claimed by ${builder}\n`);
          } catch (e) {
            if (e instanceof PreconditionError && e.message === 'no eligible job') throw new OperationError('no eligible job');
            throw e;
          }
        }),
      )
      .command(
        'complete <id>',
        'Record the end of an attempt; refused unless this builder still holds it',
        (a) =>
          a
            .positional('id', { type: 'string' })
            .option('attempt', { type: 'string', demandOption: true, describe: 'The attempt number printed by claim' })
            .option('status', { type: 'string', choices: ['completed', 'failed'], demandOption: true })
            .option('summary', { type: 'string', describe: 'One line about the result' })
            .example('$0 job complete job_20261123T101500Z_3f9a1c2b7d --builder build1 --attempt 1 --status completed', ''),
        handler(async (ctx, argv) => {
          const builder = ctx.requireBuilder();
          const id = parseJobId(argv.id);
          const attempt = parseCount(argv.attempt, '--attempt', 1, 1_000_000);
          const status = argv.status as 'completed' | 'failed';
          const summary = argv.summary === undefined ? undefined : parseText(argv.summary, '--summary', 500, { singleLine: true });
          const { result: job } = await completeJob(await ctx.store(), { id, builder, attempt, status, result: summary ? { summary } : undefined }, { clock: ctx.io.clock });
          if (ctx.args.json) ctx.json(job);
          else if (job.status === 'queued') ctx.io.out(`${job.id} failed (attempt ${job.attempt} on ${builder}); queued again: automatic retry ${job.retried} of ${job.retries}\n`);
          else ctx.io.out(`${job.id} ${job.status} (attempt ${job.attempt} on ${builder})\n`);
        }),
      )
      .example('$0 job add --type make --source https://git.example.org/app.git --branch main', 'queue a build; prints its id')
      .example('$0 job list', 'the queue in the order it will run')
      .example('$0 job log job_2026', 'the pushed log of a finished job (a unique id prefix is enough)')
      .demandCommand(1, 'name a job command: add, list, show, claim, complete, cancel, retry, log'),
  );
}

export { UsageError };
