// `npm run bench`: runs the benchmark sections in order, prints a table per
// section and writes every figure as JSON to bench-results/.
//
//   node dist/test/bench/main.js               every section
//   node dist/test/bench/main.js claims ...    only the named sections
//   node dist/test/bench/main.js --list        the section names
//
// A section is a file test/bench/<name>.ts exporting a BenchSection; add it to
// SECTIONS below. Timing targets are informative only: the machines are shared
// and noisy, so a missed target is printed but never fails the run. The exit
// code is non-zero only when a section throws or reports a correctness
// violation (a job claimed twice, a lost job, a claimer that crashed).

import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cleanupAll, gitEnv, git, repoRoot, tmpDir } from '../helpers/git.js';
import { agentSection } from './agent.js';
import { buildsSection } from './builds.js';
import { claimsSection } from './claims.js';
import { cliSection } from './cli.js';

export interface TargetCheck {
  target: string;
  met: boolean;
  detail: string;
}

export interface Column {
  key: string;
  header: string;
  /** Fixed decimals for a number; strings are printed as they are. */
  decimals?: number;
}

export type Cell = string | number | null;

export interface SectionResult {
  title: string;
  columns: Column[];
  /** One record per table row; keys beyond `columns` go to the JSON only. */
  rows: Array<Record<string, Cell>>;
  targets: TargetCheck[];
  /** Lines printed under the table: how to read it, caveats of the measurement. */
  notes?: string[];
  /** Correctness failures (not slowness): any entry makes the run exit 1. */
  violations: string[];
  /** Anything else worth keeping in the JSON (per-process figures, settings). */
  details?: unknown;
}

export interface BenchContext {
  /** A fresh temp dir (mkdtemp under os.tmpdir()), removed when the run ends. */
  tmpDir(prefix: string): Promise<string>;
  /** Environment for git and for child processes: private HOME and identity, no GIT_* leaking in. */
  env: Record<string, string>;
  /** Progress to stderr, so stdout holds only the tables. */
  log(message: string): void;
  root: string;
}

export interface BenchSection {
  name: string;
  run(ctx: BenchContext): Promise<SectionResult>;
}

/** Run order. Later sections: import them and append here. */
export const SECTIONS: BenchSection[] = [claimsSection, cliSection, agentSection, buildsSection];

function formatCell(value: Cell | undefined, col: Column): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return String(value);
    return col.decimals !== undefined ? value.toFixed(col.decimals) : String(value);
  }
  return value;
}

export function renderTable(result: Pick<SectionResult, 'title' | 'columns' | 'rows'>): string {
  const cells = result.rows.map((row) => result.columns.map((c) => formatCell(row[c.key], c)));
  const widths = result.columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const numeric = result.columns.map((c) => result.rows.every((r) => typeof r[c.key] === 'number' || r[c.key] === null));
  const line = (vals: string[]) => '| ' + vals.map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ') + ' |';
  return [
    result.title,
    '',
    line(result.columns.map((c) => c.header)),
    '|' + widths.map((w, i) => (numeric[i] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|',
    ...cells.map(line),
  ].join('\n');
}

interface SectionRecord {
  name: string;
  duration_ms: number;
  result?: SectionResult;
  error?: string;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--list')) {
    for (const s of SECTIONS) process.stdout.write(`${s.name}\n`);
    return 0;
  }
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !SECTIONS.some((s) => s.name === w));
  if (unknown.length) {
    process.stderr.write(`bench: no section ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const selected = wanted.length ? SECTIONS.filter((s) => wanted.includes(s.name)) : SECTIONS;

  const root = repoRoot();
  const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
  const gitVersion = await git(root, '--version').catch(() => 'unknown');
  const started = new Date();
  // Shared machines: the load before the run says how much to trust its timings.
  const loadAtStart = os.loadavg();
  const records: SectionRecord[] = [];
  let failed = false;

  for (const section of selected) {
    const t0 = Date.now();
    // Per section: the private HOME behind gitEnv() is a temp dir that the
    // cleanup after the previous section removed.
    const ctx: BenchContext = { tmpDir: (prefix) => tmpDir(`bench-${prefix}`), env: await gitEnv(), log, root };
    ctx.log(`section ${section.name}: start`);
    const record: SectionRecord = { name: section.name, duration_ms: 0 };
    try {
      record.result = await section.run(ctx);
    } catch (e) {
      record.error = (e as Error).stack ?? String(e);
      failed = true;
    } finally {
      record.duration_ms = Date.now() - t0;
      // Temp dirs of one section must not pile up under the next one.
      try {
        await cleanupAll();
      } catch (e) {
        ctx.log(`cleanup after ${section.name} failed: ${(e as Error).message}`);
      }
    }
    records.push(record);

    const out: string[] = [`## ${section.name} (${(record.duration_ms / 1000).toFixed(1)} s)`, ''];
    if (record.result) {
      const r = record.result;
      out.push(renderTable(r), '');
      if (r.notes?.length) out.push(...r.notes.map((n) => `note: ${n}`), '');
      for (const t of r.targets) out.push(`${t.met ? 'target met' : 'target MISSED'}: ${t.target} (${t.detail})`);
      for (const v of r.violations) out.push(`VIOLATION: ${v}`);
      if (r.violations.length) failed = true;
    } else {
      out.push(`ERROR: section ${section.name} failed: ${record.error}`);
    }
    process.stdout.write(out.join('\n') + '\n\n');
  }

  await cleanupAll().catch((e: Error) => log(`cleanup failed: ${e.message}`));
  const finished = new Date();
  const report = {
    started_at: started.toISOString(),
    finished_at: finished.toISOString(),
    duration_ms: finished.getTime() - started.getTime(),
    ok: !failed,
    host: { hostname: os.hostname(), platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? null, loadavg_at_start: loadAtStart, loadavg_at_end: os.loadavg(), node: process.version, git: gitVersion },
    settings: { env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_'))), argv },
    sections: records,
  };
  const dir = path.join(root, 'bench-results');
  await mkdir(dir, { recursive: true });
  const json = JSON.stringify(report, null, 2) + '\n';
  // Colons are legal on Linux but not on every filesystem a result is copied to.
  const file = path.join(dir, `bench-${started.toISOString().replace(/:/g, '-')}.json`);
  await writeFile(file, json);
  await writeFile(path.join(dir, 'latest.json'), json);
  process.stdout.write(`bench: ${selected.length} section(s) in ${(report.duration_ms / 1000).toFixed(1)} s; figures in ${path.relative(process.cwd(), file)} and bench-results/latest.json\n`);
  if (failed) process.stdout.write('bench: FAILED (a benchmark errored or found a correctness violation)\n');
  return failed ? 1 : 0;
}

// Only when run as the entry point: section files may import the types above.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const onSignal = (signal: NodeJS.Signals) => {
    // Child processes started by sections listen for this too and stop theirs.
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    cleanupAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    async (e) => {
      process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
      await cleanupAll().catch(() => {});
      process.exitCode = 1;
    },
  );
}
