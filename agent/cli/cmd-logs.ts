// `buildcoord logs prune --older-than 30d`: removes the pushed logs and
// manifests of jobs that finished before the cutoff, in one commit.
// jobs.json keeps its records (result.log then names a file that is gone,
// which `job log` reports as pruned); the full logs stay on the builders.

import type { Argv } from 'yargs';
import { parseDuration, parseName } from '../model/input.js';
import { PATHS, type Job, type JobsFile } from '../model/types.js';
import { builderDirs, ROOT } from '../store/layout.js';
import type { TxView } from '../store/store.js';
import type { Handler } from './cmd-jobs.js';
import type { Context } from './context.js';

/** Top-level directories that are never a builder's. */

const FINISHED = new Set(['completed', 'failed', 'cancelled']);

export interface PrunePlan {
  cutoff: string;
  /** Paths to delete, sorted. */
  remove: string[];
  /** Files of unfinished or recent jobs. */
  kept: number;
  /** Files whose job is not in jobs.json: their age is unknown. */
  orphans: string[];
}

export function pruneReads(builders: string[]): string[] {
  return [PATHS.jobs, ...builders.flatMap((b) => [`${b}/logs/`, `${b}/manifests/`])];
}

/** Pure: what to delete from the listed directories, given jobs.json and the cutoff. */
export function planPrune(view: TxView, builders: string[], cutoff: Date, opts: { orphans?: boolean } = {}): PrunePlan {
  const jobs = new Map<string, Job>((view.get<JobsFile>(PATHS.jobs)?.jobs ?? []).map((j) => [j.id, j]));
  const plan: PrunePlan = { cutoff: cutoff.toISOString(), remove: [], kept: 0, orphans: [] };
  for (const b of builders) {
    for (const [dir, ext] of [
      ['logs', '.log'],
      ['manifests', '.json'],
    ] as const) {
      for (const name of view.list(`${b}/${dir}/`)) {
        if (!name.endsWith(ext) || name.startsWith('.')) continue;
        const path = `${b}/${dir}/${name}`;
        const job = jobs.get(name.slice(0, -ext.length));
        if (!job) {
          plan.orphans.push(path);
          if (opts.orphans) plan.remove.push(path);
          continue;
        }
        const done = job.completed_at ? Date.parse(job.completed_at) : NaN;
        if (FINISHED.has(job.status) && Number.isFinite(done) && done < cutoff.getTime()) plan.remove.push(path);
        else plan.kept++;
      }
    }
  }
  plan.remove.sort();
  plan.orphans.sort();
  return plan;
}

async function buildersOnMain(ctx: Context, only: string | undefined): Promise<string[]> {
  if (only) return [only];
  return builderDirs(await (await ctx.store()).read([ROOT]));
}

export function registerLogsCommands(y: Argv, handler: Handler): Argv {
  return y.command('logs', 'Pushed build logs and manifests', (l) =>
    l
      .command(
        'prune',
        'Remove <builder>/logs/*.log and <builder>/manifests/*.json of jobs that finished before a cutoff, in one commit',
        (a) =>
          a
            .option('older-than', { type: 'string', demandOption: true, describe: 'Age of the job’s completion, e.g. 30d, 12h' })
            .option('only-builder', { type: 'string', describe: 'Only this builder’s directory (default: every builder’s)' })
            .option('orphans', { type: 'boolean', describe: 'Also remove files whose job is no longer in jobs.json' })
            .option('dry-run', { type: 'boolean', describe: 'Say what would go; change nothing' })
            .example('$0 logs prune --older-than 30d', 'logs and manifests of jobs finished more than 30 days ago')
            .example('$0 logs prune --older-than 7d --dry-run', 'what would go'),
        handler(async (ctx, argv) => {
          const ms = parseDuration(argv['older-than'], '--older-than');
          const only = argv['only-builder'] === undefined ? undefined : parseName(argv['only-builder'], '--only-builder');
          const cutoff = new Date(ctx.io.clock().getTime() - ms);
          const opts = { orphans: Boolean(argv.orphans) };
          const store = await ctx.store();
          const builders = await buildersOnMain(ctx, only);
          let plan: PrunePlan;
          let commit: string | null = null;
          if (argv['dry-run']) {
            plan = planPrune(await store.read(pruneReads(builders)), builders, cutoff, opts);
          } else {
            const r = await store.transact<PrunePlan>({
              op: 'prune-logs',
              reads: pruneReads(builders),
              mutate: (view) => {
                const p = planPrune(view, builders, cutoff, opts);
                if (!p.remove.length) return { result: p };
                return {
                  result: p,
                  raw: Object.fromEntries(p.remove.map((f) => [f, null])),
                  message: `prune ${p.remove.length} log and manifest files of jobs finished before ${p.cutoff}`,
                  trailers: { 'Coord-Cutoff': p.cutoff },
                };
              },
            });
            plan = r.result;
            commit = r.commit;
          }
          if (ctx.args.json) {
            ctx.json({ dry_run: Boolean(argv['dry-run']), commit, ...plan });
            return;
          }
          const verb = argv['dry-run'] ? 'would remove' : 'removed';
          if (!plan.remove.length) ctx.io.out(`nothing finished before ${plan.cutoff}; ${plan.kept} file(s) kept\n`);
          else ctx.io.out(`${verb} ${plan.remove.length} file(s) of jobs finished before ${plan.cutoff}${commit ? ` in ${commit.slice(0, 12)}` : ''}; ${plan.kept} kept\n${plan.remove.map((f) => `  ${f}\n`).join('')}`);
          if (plan.orphans.length && !opts.orphans) ctx.io.out(`${plan.orphans.length} file(s) belong to jobs no longer in jobs.json and were kept (--orphans removes them)\n`);
        }),
      )
      .example('$0 logs prune --older-than 30d', 'one commit removing old logs and manifests from main')
      .demandCommand(1, 'name a logs command: prune'),
  );
}
