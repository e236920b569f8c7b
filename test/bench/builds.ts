// Real builds (issue 5): what running a make build through a queued job costs
// on top of running the same make directly, measured in the same run.
//
// Two C projects, so the figure is shown not to grow with the build: the
// quickstart's examples/hello-c (11 files) and a generated project of
// BENCH_BUILDS_FILES files (default 120) with the same Makefile. For each,
// BENCH_BUILDS_ROUNDS rounds (default 3), interleaved:
//   direct: a fresh clone of the source, then `make -jN` with the N the agent
//           uses (availableParallelism); make alone is timed, the clone apart.
//   queued: one `buildcoord agent` (--poll 1s, no distcc hosts: local make) on
//           a file:// remote; a make job enqueued; from the agent's log, the
//           claim (enqueue landed -> 'claimed') and the job (claimed -> 'result
//           pushed': checkout, make, artifacts with sha256, log tail and the
//           completion commit pushed).
// overhead = job - direct make (medians). Target: under 2 s, plus one claim,
// which is reported beside it (it is mostly the wait for the next poll).

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { addJobs, type JobDraft } from '../../agent/store/ops.js';
import { Store } from '../../agent/store/store.js';
import { git, makeBareRepo } from '../helpers/git.js';
import { seededRemote, startAgent, waitReady, type AgentProc, type Event } from './agent.js';
import { cliSnapshot, intEnv, median, timeChild } from './cli.js';
import type { BenchContext, BenchSection, SectionResult, TargetCheck } from './main.js';

const TARGET_OVERHEAD_MS = 2000;

/** A generated C project: n files, each a few functions with enough work that gcc -O2 takes a moment. */
function generated(n: number): Record<string, string> {
  const files: Record<string, string> = {};
  const decls: string[] = [];
  const calls: string[] = [];
  for (let i = 0; i < n; i++) {
    decls.push(`int part${i}(int);`);
    calls.push(`  sum += part${i}(${i});`);
    const fns = Array.from(
      { length: 6 },
      (_, k) => `static int f${k}(int x) {\n  int acc = x;\n  for (int j = 0; j < ${40 + k}; j++) acc = (acc * ${31 + k} + j) ^ (acc >> ${(k % 5) + 1});\n  return acc;\n}\n`,
    ).join('\n');
    files[`src/part${i}.c`] = `${fns}\nint part${i}(int x) { return f0(x) + f1(x) - f2(x) + f3(x) - f4(x) + f5(x); }\n`;
  }
  files['src/main.c'] = `#include <stdio.h>\n${decls.join('\n')}\nint main(void) {\n  long sum = 0;\n${calls.join('\n')}\n  printf("generated: %ld\\n", sum);\n  return 0;\n}\n`;
  return files;
}

/** A bare source repository on main: examples/hello-c, optionally with its sources replaced by generated ones. */
async function sourceRepo(ctx: BenchContext, label: string, files: Record<string, string> | null): Promise<string> {
  const parent = await ctx.tmpDir(`builds-src-${label}-`);
  const bare = await makeBareRepo({ parent, name: `${label}.git` });
  const work = path.join(parent, 'work');
  await mkdir(work);
  await writeFile(path.join(work, 'Makefile'), await readFile(path.join(ctx.root, 'examples', 'hello-c', 'Makefile')));
  if (files) {
    for (const [rel, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(work, rel)), { recursive: true });
      await writeFile(path.join(work, rel), text);
    }
  } else {
    await cp(path.join(ctx.root, 'examples', 'hello-c', 'src'), path.join(work, 'src'), { recursive: true });
  }
  await git(work, 'init', '--quiet', '-b', 'main');
  await git(work, 'add', '--all');
  await git(work, 'commit', '--quiet', '-m', `bench source ${label}`);
  await git(work, 'push', '--quiet', bare.dir, 'HEAD:refs/heads/main');
  return bare.dir;
}

interface Round {
  clone_ms: number;
  make_ms: number;
  claim_ms: number;
  job_ms: number;
}

export const buildsSection: BenchSection = {
  name: 'builds',
  async run(ctx: BenchContext): Promise<SectionResult> {
    const rounds = intEnv('BENCH_BUILDS_ROUNDS', 3);
    const genFiles = intEnv('BENCH_BUILDS_FILES', 120);
    const jobs = Math.max(1, availableParallelism());
    const violations: string[] = [];
    const agents: AgentProc[] = [];
    try {
      const cli = await cliSnapshot(ctx);
      const remote = await seededRemote(ctx, 'builds', ['bench1']);
      const home = await ctx.tmpDir('builds-agent-home-');
      const config = path.join(home, 'agent.json');
      await writeFile(config, JSON.stringify({ builder: 'bench1', artifacts_dir: path.join(home, 'artifacts') }) + '\n');
      const agent = startAgent(ctx, { cli, builder: 'bench1', repo: remote.url, home, config, flags: ['--poll', '1s', '--heartbeat', '2s', '--lease', '30s'] });
      agents.push(agent);
      if (!(await waitReady(agent, remote.dir, 30_000))) throw new Error(`agent did not come up: ${agent.stderr().slice(-500)}`);
      const store = new Store({ remote: remote.url, home: await ctx.tmpDir('builds-enqueue-'), actor: 'bench' });

      const projects = [
        { label: 'hello-c', files: 11, source: await sourceRepo(ctx, 'hello-c', null) },
        { label: `generated-${genFiles}`, files: genFiles + 1, source: await sourceRepo(ctx, `generated-${genFiles}`, generated(genFiles)) },
      ];
      const results = new Map<string, Round[]>();
      for (const p of projects) {
        const list: Round[] = [];
        results.set(p.label, list);
        // A first queued job fills the agent's source cache, as on a builder that has built this source before.
        const runs = rounds + 1;
        for (let r = 0; r < runs; r++) {
          ctx.log(`builds: ${p.label} round ${r + 1}/${runs}${r === 0 ? ' (warm-up)' : ''}`);
          // direct
          const dir = path.join(await ctx.tmpDir(`builds-direct-${p.label}-`), 'src');
          const clone = await timeChild('git', ['clone', '--quiet', p.source, dir], ctx.env);
          if (clone.code !== 0) throw new Error(`git clone ${p.source}: ${clone.stderr}`);
          const make = await timeChild('make', [`-j${jobs}`], ctx.env, dir, 600_000);
          if (make.code !== 0) throw new Error(`make in ${dir}: ${make.stderr.slice(-500)}`);
          // queued
          const draft: JobDraft = { type: 'make', priority: 5, source: p.source, branch: 'main', commit: null, description: `bench ${p.label}`, dependencies: [], timeout_seconds: null, retries: 0 };
          const job = (await addJobs(store, [draft])).result[0]!;
          const landed = Date.now();
          const claimed = await agent.waitFor((e: Event) => e.msg === 'claimed' && e.job === job.id, 60_000);
          const pushed = await agent.waitFor((e: Event) => e.msg === 'result pushed' && e.job === job.id, 600_000);
          const finished = agent.events.find((e) => e.msg === 'job finished' && e.job === job.id);
          if (!claimed || !pushed) throw new Error(`job ${job.id} was not ${claimed ? 'finished' : 'claimed'} in time: ${agent.stderr().slice(-500)}`);
          if (finished?.status !== 'completed') violations.push(`${p.label}: job ${job.id} ended ${String(finished?.status)}: ${String(finished?.summary)}`);
          if (r > 0) list.push({ clone_ms: clone.ms, make_ms: make.ms, claim_ms: Number(claimed.time) - landed, job_ms: Number(pushed.time) - Number(claimed.time) });
        }
      }
      store.close();

      const rows = projects.map((p) => {
        const list = results.get(p.label)!;
        const m = (k: keyof Round) => median(list.map((x) => x[k]));
        return {
          project: `${p.label} (${p.files} files)`,
          make_ms: m('make_ms'),
          job_ms: m('job_ms'),
          overhead_ms: m('job_ms') - m('make_ms'),
          claim_ms: m('claim_ms'),
          clone_ms: m('clone_ms'),
          ratio: m('job_ms') / m('make_ms'),
        };
      });
      const targets: TargetCheck[] = rows.map((r) => ({
        target: `${r.project}: a queued make job costs under ${TARGET_OVERHEAD_MS / 1000} s more than the same make run directly (plus one claim)`,
        met: r.overhead_ms < TARGET_OVERHEAD_MS,
        detail: `overhead ${Math.round(r.overhead_ms)} ms (job ${Math.round(r.job_ms)} ms vs make ${Math.round(r.make_ms)} ms); claim ${Math.round(r.claim_ms)} ms`,
      }));
      return {
        title: `make through a queued job vs the same make run directly (medians of ${rounds} interleaved rounds, ms; make -j${jobs}, local, no distcc)`,
        columns: [
          { key: 'project', header: 'project' },
          { key: 'make_ms', header: 'make direct', decimals: 0 },
          { key: 'job_ms', header: 'queued job', decimals: 0 },
          { key: 'overhead_ms', header: 'overhead', decimals: 0 },
          { key: 'ratio', header: 'job/make', decimals: 2 },
          { key: 'claim_ms', header: 'claim', decimals: 0 },
          { key: 'clone_ms', header: 'direct clone', decimals: 0 },
        ],
        rows,
        targets,
        notes: [
          "queued job: from the agent's 'claimed' log line to 'result pushed' (checkout from its source cache, make, artifacts copied with sha256, log tail, completion commit pushed); claim: from the enqueue commit landing to 'claimed' (mostly the wait for the next 1 s poll).",
          'direct: make alone in a fresh clone; the clone is shown apart. The first round of each project (filling the source cache) is left out.',
        ],
        violations,
        details: Object.fromEntries(results),
      };
    } finally {
      await Promise.all(agents.map((a) => a.stop(20_000).catch(() => 0)));
    }
  },
};
