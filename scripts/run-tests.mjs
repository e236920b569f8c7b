#!/usr/bin/env node
// Runs the compiled tests (dist/test/**/*.test.js) with node's built-in runner.
//
//   node scripts/run-tests.mjs                 every test file
//   node scripts/run-tests.mjs helpers store   files whose path contains "helpers" or "store"
//   node scripts/run-tests.mjs --test-name-pattern=claim   options starting with "-" go to node
//
// Node 20's --test does not expand globs, so the files are found here and
// passed by name. A second (TAP) reporter writes to a temp file only so that a
// plain "N passed, N failed" line can close the run for scripts to grep.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testDir = path.join(root, 'dist', 'test');

const args = process.argv.slice(2);
const nodeOptions = args.filter((a) => a.startsWith('-'));
const filters = args.filter((a) => !a.startsWith('-'));

function walk(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...walk(full));
    else if (entry.isFile() && entry.name.endsWith('.test.js')) found.push(full);
  }
  return found;
}

const all = existsSync(testDir) ? walk(testDir) : [];
// tsc never deletes from dist/, so a test whose source was removed or renamed
// would keep running from its stale .js. Only run files that still have a source.
const stale = [];
const live = all.filter((file) => {
  const source = path.join(root, path.relative(path.join(root, 'dist'), file)).replace(/\.js$/, '.ts');
  if (existsSync(source)) return true;
  stale.push(path.relative(root, file));
  return false;
});
if (stale.length > 0) {
  console.log(`run-tests: ignoring ${stale.length} compiled test(s) with no source: ${stale.join(', ')}`);
}

const files = live
  .map((file) => path.relative(root, file))
  .filter((rel) => filters.length === 0 || filters.some((f) => rel.includes(f)))
  .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

if (files.length === 0) {
  const what = filters.length > 0 ? ` matching ${filters.map((f) => JSON.stringify(f)).join(' or ')}` : '';
  console.error(`run-tests: no test files${what} under dist/test (run \`npm run build\` first?)`);
  process.exit(1);
}

const env = { ...process.env };
if (env.CI && !['0', 'false'].includes(env.CI.toLowerCase())) env.CI = 'true';

const tapDir = mkdtempSync(path.join(tmpdir(), 'buildcoord-run-tests-'));
const tapFile = path.join(tapDir, 'report.tap');

const child = spawn(
  process.execPath,
  [
    '--test',
    '--test-concurrency=2',
    '--test-timeout=300000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...nodeOptions,
    ...files,
  ],
  { cwd: root, env, stdio: 'inherit' },
);

// A terminal's Ctrl-C reaches the child through the process group; a SIGTERM
// sent to this PID alone (CI cancelling a job) has to be passed on.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}

child.on('error', (err) => {
  console.error(`run-tests: could not start node: ${err.message}`);
  rmSync(tapDir, { recursive: true, force: true });
  process.exit(1);
});

child.on('exit', (code, signal) => {
  let exitCode = code ?? 128 + (constants.signals[signal] ?? 0);
  const counts = readCounts();
  rmSync(tapDir, { recursive: true, force: true });
  if (counts === undefined) {
    console.log(`run-tests: the test runner left no summary (exit ${code ?? signal})`);
    if (exitCode === 0) exitCode = 1;
  } else {
    // A cancelled test (timeout, its file crashed) did not pass: count it as failed.
    const failed = counts.fail + counts.cancelled;
    const skipped = counts.skipped > 0 ? `, ${counts.skipped} skipped` : '';
    console.log(`${counts.pass} passed, ${failed} failed${skipped}`);
  }
  process.exit(exitCode);
});

function readCounts() {
  let text;
  try {
    text = readFileSync(tapFile, 'utf8');
  } catch {
    return undefined;
  }
  // The summary comes last; a test printing "# pass 3" of its own earlier in
  // the stream must not win, so keep the last value seen for each key.
  const counts = {};
  for (const match of text.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) {
    counts[match[1]] = Number(match[2]);
  }
  if (counts.pass === undefined || counts.fail === undefined) return undefined;
  return { pass: counts.pass, fail: counts.fail, cancelled: counts.cancelled ?? 0, skipped: counts.skipped ?? 0 };
}
