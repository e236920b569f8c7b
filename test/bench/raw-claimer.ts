// The benchmark's baseline: the compare-and-swap loop a person would write in
// plain git, in its own non-bare clone, doing the same work as
// test/fixtures/claimer.ts (same pick rule, same file bytes, same commits):
//
//   git fetch origin; git reset --hard origin/main; edit jobs.json;
//   git commit -am; git push origin HEAD:main; rejected -> jittered backoff, again
//
// Prints the same JSON lines as the claimer. Usage:
//   node raw-claimer.js WORKDIR BUILDER [--no-complete] [--start-at EPOCH_MS]

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PreconditionError } from '../../agent/errors.js';
import { canonicalJson } from '../../agent/model/canonical.js';
import * as jobs from '../../agent/model/jobs.js';
import { PATHS, type Job, type JobsFile } from '../../agent/model/types.js';
import { schemaFor } from '../../agent/model/validate.js';

const [work, builder, ...rest] = process.argv.slice(2);
if (!work || !builder) {
  process.stderr.write('usage: raw-claimer WORKDIR BUILDER [--no-complete] [--start-at MS]\n');
  process.exit(2);
}
const complete = !rest.includes('--no-complete');
const startAt = rest.includes('--start-at') ? Number(rest[rest.indexOf('--start-at') + 1]) : 0;
const LEASE_MS = 600_000;
const MAX_BACKOFF_MS = 1000; // the store's default
const jobsSchema = schemaFor(PATHS.jobs);

function git(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('git', args, { cwd: work, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 128) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function gitOk(...args: string[]): Promise<string> {
  const r = await git(...args);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The store's backoff: full jitter, cap min(maxBackoff, 4 ms * 2^attempt). */
function backoff(attempt: number): Promise<void> {
  const cap = Math.min(MAX_BACKOFF_MS, 4 * 2 ** Math.min(attempt, 10));
  const ms = (randomBytes(2).readUInt16BE(0) / 65536) * cap;
  return new Promise((r) => setTimeout(r, ms));
}

// Counted the way claimer.js counts them: the push attempts of transactions
// that landed. A transaction that loses rounds and then finds the queue empty
// is not counted there (the store's error carries no count), so neither is it
// here; pushesAll counts every attempt.
let pushes = 0;
let pushesAll = 0;
const jobsPath = join(work, PATHS.jobs);

/** fetch, reset, mutate, commit, push; again from fetch when the push is rejected. */
async function transact(op: string, mutate: (file: JobsFile) => { file: JobsFile; job: Job; message: string; trailers: Record<string, string> }) {
  for (let attempt = 1; ; attempt++) {
    await gitOk('fetch', '--quiet', 'origin');
    await gitOk('reset', '--quiet', '--hard', 'origin/main');
    const file = JSON.parse(await readFile(jobsPath, 'utf8')) as JobsFile;
    const r = mutate(file); // throws PreconditionError when there is nothing to do
    await writeFile(jobsPath, canonicalJson(r.file, jobsSchema));
    const trailers = { 'Coord-Op': op, 'Coord-Builder': builder!, ...r.trailers, 'Coord-Nonce': randomBytes(8).toString('hex') };
    const message = `${r.message}\n\n${Object.entries(trailers).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
    await gitOk('commit', '--quiet', '--no-verify', '-a', '-m', message);
    pushesAll++;
    const p = await git('push', '--porcelain', '--no-verify', 'origin', 'HEAD:refs/heads/main');
    if (p.code === 0) {
      pushes += attempt;
      return r.job;
    }
    const status = p.stdout.split('\n').find((l) => l.includes(':refs/heads/main\t')) ?? '';
    // Non-fast-forward, or two pushes racing for the remote's ref lock: a lost CAS.
    const lost = /^!.*\[rejected\]/.test(status) || /^!.*\[remote rejected\].*(failed to update ref|failed to lock|cannot lock|incorrect old value)/.test(status);
    if (!lost) throw new Error(`push failed (exit ${p.code}): ${status || p.stderr.trim()}`);
    await backoff(attempt);
  }
}

if (startAt > Date.now()) await new Promise((r) => setTimeout(r, startAt - Date.now()));
let claims = 0;
const started = Date.now();
for (;;) {
  try {
    const job = await transact('claim', (file) => {
      const r = jobs.claim(file, { name: builder }, new Date(), LEASE_MS);
      return { ...r, message: `claim ${r.job.id} on ${builder} (attempt ${r.job.attempt})`, trailers: { 'Coord-Job': r.job.id, 'Coord-Attempt': String(r.job.attempt) } };
    });
    claims++;
    process.stdout.write(JSON.stringify({ event: 'claim', id: job.id, attempt: job.attempt, builder }) + '\n');
    if (complete) {
      await transact('complete', (file) => {
        const r = jobs.complete(file, job.id, builder, job.attempt, 'completed', new Date());
        return {
          ...r,
          message: `completed ${job.id} on ${builder} (attempt ${job.attempt})`,
          trailers: { 'Coord-Job': job.id, 'Coord-Attempt': String(job.attempt), 'Coord-Result': 'completed' },
        };
      });
    }
  } catch (e) {
    if (e instanceof PreconditionError && e.message === 'no eligible job') break;
    process.stderr.write(`raw-claimer ${builder}: ${(e as Error).message}\n`);
    process.exitCode = 1;
    break;
  }
}
process.stdout.write(JSON.stringify({ event: 'done', builder, claims, pushes, pushes_all: pushesAll, ms: Date.now() - started }) + '\n');
