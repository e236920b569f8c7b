// The pure parts the daemon leans on, with a fake clock: leases, staleness,
// reclaiming from silent builders, hand-back, cancel and retry
// (agent/model/jobs.ts), and how the agent's settings are put together from
// flags, environment and config file (resolveSettings in agent/cli/cmd-agent.ts).
// Nothing here reads the real clock, touches the disk or runs git.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveSettings } from '../../agent/cli/cmd-agent.js';
import type { FileConfig } from '../../agent/config.js';
import { PreconditionError, UsageError } from '../../agent/errors.js';
import { cancel, claimJob, complete, effectiveLease, handBack, isStale, reclaimExpired, renewLease, retry } from '../../agent/model/jobs.js';
import { PATHS, type HeartbeatFile, type Job, type JobsFile } from '../../agent/model/types.js';
import { validateDoc } from '../../agent/model/validate.js';
import { queuedJob } from '../helpers/jobs.js';

// ---------------------------------------------------------------- a fake clock

const T0 = Date.parse('2025-06-01T12:00:00.000Z');
/** The fake clock: seconds after T0. */
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const isoAt = (seconds: number) => at(seconds).toISOString();
const LEASE = 60_000; // 60 s

function job(id: string, over: Partial<Job> = {}): Job {
  return queuedJob(id, isoAt(-600), { source: '/src', ...over });
}

/** A job claimed by `by` at second `claimedAt` (attempt `attempt`), its lease on main running LEASE from then. */
function running(id: string, by: string, claimedAt: number, attempt = 1, over: Partial<Job> = {}): Job {
  return job(id, { status: 'running', assigned_to: by, attempt, started_at: isoAt(claimedAt), lease_expires_at: isoAt(claimedAt + LEASE / 1000), ...over });
}

function fileOf(...jobs: Job[]): JobsFile {
  return { $schema: '../schemas/jobs.schema.json', version: 1, jobs };
}

function hb(server: string, sentAt: number, leases: Array<{ id: string; attempt: number; expiresAt: number }> = []): HeartbeatFile {
  return {
    server,
    timestamp: isoAt(sentAt),
    uptime_seconds: 100,
    healthy: true,
    leases: leases.map((l) => ({ id: l.id, attempt: l.attempt, expires_at: isoAt(l.expiresAt) })),
  };
}

function valid(file: JobsFile): void {
  assert.deepEqual(validateDoc(PATHS.jobs, file), [], 'the result is a valid coordination/jobs.json');
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

// ---------------------------------------------------------------- isStale

describe('isStale', () => {
  it('calls a builder that never sent a heartbeat stale', () => {
    assert.equal(isStale(undefined, at(0), LEASE), true);
  });

  it('is fresh up to exactly the lease, stale one millisecond later', () => {
    const h = hb('build2', 0);
    assert.equal(isStale(h, at(30), LEASE), false);
    assert.equal(isStale(h, at(60), LEASE), false, 'exactly the lease old: not yet');
    assert.equal(isStale(h, new Date(T0 + LEASE + 1), LEASE), true);
  });

  it('calls a heartbeat with an unreadable timestamp stale', () => {
    assert.equal(isStale({ ...hb('build2', 0), timestamp: 'yesterday' }, at(1), LEASE), true);
  });

  it('does not call a heartbeat from the future stale (clock skew between builders)', () => {
    assert.equal(isStale(hb('build2', 30), at(0), LEASE), false);
  });
});

// ---------------------------------------------------------------- effectiveLease

describe('effectiveLease', () => {
  const j = running('job_a', 'build2', 0, 2); // main says: until 60 s

  it("is main's lease without a heartbeat", () => {
    assert.equal(effectiveLease(j, undefined), at(60).getTime());
  });

  it('is a later renewal on the heartbeat for the same job and attempt', () => {
    assert.equal(effectiveLease(j, hb('build2', 100, [{ id: 'job_a', attempt: 2, expiresAt: 160 }])), at(160).getTime());
  });

  it('is never shortened by an earlier heartbeat lease', () => {
    assert.equal(effectiveLease(j, hb('build2', 0, [{ id: 'job_a', attempt: 2, expiresAt: 10 }])), at(60).getTime());
  });

  it('ignores heartbeat leases of another attempt or another job', () => {
    const h = hb('build2', 100, [
      { id: 'job_a', attempt: 1, expiresAt: 500 },
      { id: 'job_b', attempt: 2, expiresAt: 500 },
    ]);
    assert.equal(effectiveLease(j, h), at(60).getTime());
  });

  it('takes the latest of several renewals', () => {
    const h = hb('build2', 100, [
      { id: 'job_a', attempt: 2, expiresAt: 130 },
      { id: 'job_a', attempt: 2, expiresAt: 170 },
    ]);
    assert.equal(effectiveLease(j, h), at(170).getTime());
  });

  it('is 0 (long expired) for a job with no lease anywhere', () => {
    assert.equal(effectiveLease(job('job_q'), undefined), 0);
  });
});

// ---------------------------------------------------------------- reclaimExpired

describe('reclaimExpired', () => {
  it('puts the expired job of a silent builder back in the queue, attempt unchanged, reclaims counted', () => {
    const file = deepFreeze(fileOf(running('job_a', 'build2', 0, 1), job('job_b')));
    const beats = new Map([['build2', hb('build2', 0, [{ id: 'job_a', attempt: 1, expiresAt: 60 }])]]);
    const r = reclaimExpired(file, beats, at(61), LEASE, 3, 'build1');
    assert.equal(r.reclaimed.length, 1);
    const back = r.file.jobs[0]!;
    assert.deepEqual(r.reclaimed[0], { job: back, from: 'build2', failed: false });
    assert.equal(back.status, 'queued');
    assert.equal(back.assigned_to, null);
    assert.equal(back.started_at, null);
    assert.equal(back.lease_expires_at, null);
    assert.equal(back.attempt, 1, 'the next claim makes it attempt 2');
    assert.equal(back.reclaims, 1);
    assert.equal(r.file.jobs[1], file.jobs[1], 'other jobs untouched');
    valid(r.file);
  });

  it('leaves a job alone while its builder heartbeats, even when the lease on main ran out', () => {
    const file = fileOf(running('job_a', 'build2', 0));
    // Main's lease ran out at 60 s, but build2 heartbeated at 100 s and renewed there.
    const beats = new Map([['build2', hb('build2', 100, [{ id: 'job_a', attempt: 1, expiresAt: 160 }])]]);
    const r = reclaimExpired(file, beats, at(130), LEASE, 3, 'build1');
    assert.deepEqual(r.reclaimed, []);
    assert.equal(r.file, file, 'nothing changed: the same object back');
  });

  it('leaves a job alone while its builder heartbeats, even without a lease renewal on the heartbeat', () => {
    const file = fileOf(running('job_a', 'build2', 0));
    const r = reclaimExpired(file, new Map([['build2', hb('build2', 100)]]), at(130), LEASE, 3, 'build1');
    assert.deepEqual(r.reclaimed, []);
  });

  it('waits for the lease even when the builder is silent', () => {
    // No heartbeat at all (stale), but main's lease still runs until 60 s.
    const file = fileOf(running('job_a', 'build2', 0));
    assert.deepEqual(reclaimExpired(file, new Map(), at(59), LEASE, 3, 'build1').reclaimed, []);
    assert.equal(reclaimExpired(file, new Map(), at(60), LEASE, 3, 'build1').reclaimed.length, 1, 'at the expiry instant it is expired');
  });

  it('waits for a renewal on the last heartbeat even when that heartbeat is stale', () => {
    const file = fileOf(running('job_a', 'build2', 0));
    // build2 last heartbeated at 10 s with a long lease to 200 s, then went silent.
    const beats = new Map([['build2', hb('build2', 10, [{ id: 'job_a', attempt: 1, expiresAt: 200 }])]]);
    assert.deepEqual(reclaimExpired(file, beats, at(150), LEASE, 3, 'build1').reclaimed, []);
    assert.equal(reclaimExpired(file, beats, at(201), LEASE, 3, 'build1').reclaimed.length, 1);
  });

  it('never takes back the caller’s own jobs, nor jobs that are not running', () => {
    const file = fileOf(
      running('job_own', 'build1', 0),
      job('job_q'),
      job('job_done', { status: 'completed', assigned_to: 'build2', attempt: 1, completed_at: isoAt(5) }),
      job('job_failed', { status: 'failed', assigned_to: 'build2', attempt: 1, completed_at: isoAt(5) }),
    );
    const r = reclaimExpired(file, new Map(), at(1000), LEASE, 3, 'build1');
    assert.deepEqual(r.reclaimed, []);
    assert.equal(r.file, file);
  });

  it('takes back from several silent builders in one go, and only theirs', () => {
    const file = fileOf(running('job_a', 'build2', 0), running('job_b', 'build3', 0), running('job_c', 'build4', 0));
    const beats = new Map([
      ['build2', hb('build2', 0)],
      ['build4', hb('build4', 990)],
    ]);
    const r = reclaimExpired(file, beats, at(1000), LEASE, 3, 'build1');
    assert.deepEqual(
      r.reclaimed.map((x) => [x.job.id, x.from]),
      [
        ['job_a', 'build2'],
        ['job_b', 'build3'],
      ],
    );
    assert.equal(r.file.jobs[2]!.status, 'running', 'build4 is alive');
  });

  it('fails a job taken back more often than the limit, saying why', () => {
    const file = fileOf(running('job_a', 'build2', 0, 4, { reclaims: 3 }));
    const r = reclaimExpired(file, new Map(), at(100), LEASE, 3, 'build1');
    assert.equal(r.reclaimed.length, 1);
    const { job: failed, from, failed: isFailed } = r.reclaimed[0]!;
    assert.equal(isFailed, true);
    assert.equal(from, 'build2');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.reclaims, 4);
    assert.equal(failed.completed_at, isoAt(100));
    assert.equal(failed.lease_expires_at, null);
    assert.match(String(failed.result?.summary), /reclaimed 4 times \(limit 3\).*build2, attempt 4/);
    valid(r.file);
  });

  it('at the limit still re-queues (limit 3 means three reclaims are fine)', () => {
    const r = reclaimExpired(fileOf(running('job_a', 'build2', 0, 3, { reclaims: 2 })), new Map(), at(100), LEASE, 3, 'build1');
    assert.equal(r.reclaimed[0]!.failed, false);
    assert.equal(r.reclaimed[0]!.job.reclaims, 3);
  });

  it('fences the old holder: after the reclaim and a new claim, its completion, renewal and hand-back are refused', () => {
    const reclaimed = reclaimExpired(fileOf(running('job_a', 'build2', 0)), new Map(), at(100), LEASE, 3, 'build1').file;
    const claimed = claimJob(reclaimed, 'job_a', 'build1', at(101), LEASE);
    assert.equal(claimed.job.attempt, 2);
    assert.equal(claimed.job.reclaims, 1, 'the count survives the new claim');
    assert.throws(() => complete(claimed.file, 'job_a', 'build2', 1, 'completed', at(102)), PreconditionError);
    assert.throws(() => renewLease(claimed.file, 'job_a', 'build2', 1, at(102), LEASE), PreconditionError);
    assert.throws(() => handBack(claimed.file, 'job_a', 'build2', 1, at(0)), /attempt 1 on build2 is no longer current: the job is attempt 2 on build1/);
    // Even the same builder with the old attempt is out.
    assert.throws(() => complete(claimed.file, 'job_a', 'build1', 1, 'completed', at(102)), PreconditionError);
    assert.equal(complete(claimed.file, 'job_a', 'build1', 2, 'completed', at(102)).job.status, 'completed');
  });

  it('without a self, takes back any silent builder’s job', () => {
    const r = reclaimExpired(fileOf(running('job_a', 'build1', 0)), new Map(), at(100), LEASE, 3);
    assert.equal(r.reclaimed.length, 1);
  });
});

// ---------------------------------------------------------------- handBack

describe('handBack', () => {
  it('gives the holder’s running job back to the queue; the next claim is a new attempt', () => {
    const file = deepFreeze(fileOf(running('job_a', 'build1', 0, 1), job('job_b')));
    const r = handBack(file, 'job_a', 'build1', 1, at(0));
    assert.equal(r.job.status, 'queued');
    assert.equal(r.job.assigned_to, null);
    assert.equal(r.job.started_at, null);
    assert.equal(r.job.lease_expires_at, null);
    assert.equal(r.job.attempt, 1);
    assert.equal(r.job.reclaims, undefined, 'a hand-back is not a reclaim');
    assert.equal(r.file.jobs[1], file.jobs[1]);
    valid(r.file);
    assert.equal(claimJob(r.file, 'job_a', 'build2', at(5), LEASE).job.attempt, 2);
  });

  it('is refused for another builder, another attempt, or a job no longer running', () => {
    const file = fileOf(running('job_a', 'build1', 0, 2), job('job_q'), job('job_c', { status: 'completed', assigned_to: 'build1', attempt: 1 }));
    assert.throws(() => handBack(file, 'job_a', 'build2', 2, at(0)), PreconditionError);
    assert.throws(() => handBack(file, 'job_a', 'build1', 1, at(0)), PreconditionError);
    assert.throws(() => handBack(file, 'job_q', 'build1', 0, at(0)), PreconditionError);
    assert.throws(() => handBack(file, 'job_c', 'build1', 1, at(0)), /no longer current: the job is completed/);
  });
});

// ---------------------------------------------------------------- cancel

describe('cancel', () => {
  it('cancels a queued job at once, saying who and when', () => {
    const file = deepFreeze(fileOf(job('job_q')));
    const r = cancel(file, 'job_q', 'alice', at(7));
    assert.equal(r.job.status, 'cancelled');
    assert.equal(r.job.completed_at, isoAt(7));
    assert.equal(r.job.result?.summary, 'cancelled by alice before it ran');
    assert.equal(file.jobs[0]!.status, 'queued', 'the input is untouched');
    valid(r.file);
  });

  it('only marks a running job: its builder stops it and reports the end', () => {
    const file = fileOf(running('job_a', 'build1', 0));
    const r = cancel(file, 'job_a', 'alice', at(7));
    assert.equal(r.job.status, 'running');
    assert.equal(r.job.cancel_requested, true);
    assert.equal(r.job.assigned_to, 'build1');
    assert.equal(r.job.attempt, 1);
    valid(r.file);
    // The builder then completes it as cancelled, fenced by its attempt as usual.
    const done = complete(r.file, 'job_a', 'build1', 1, 'cancelled', at(9));
    assert.equal(done.job.status, 'cancelled');
  });

  it('asking twice changes nothing the second time', () => {
    const once = cancel(fileOf(running('job_a', 'build1', 0)), 'job_a', 'alice', at(7)).file;
    const twice = cancel(once, 'job_a', 'bob', at(8));
    assert.equal(twice.file, once);
  });

  it('is refused for a job that already ended', () => {
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      const file = fileOf(job('job_x', { status, completed_at: isoAt(1) }));
      assert.throws(() => cancel(file, 'job_x', 'alice', at(7)), (e: unknown) => e instanceof PreconditionError && new RegExp(`already ${status}`).test((e as Error).message));
    }
  });

  it('names an unknown job', () => {
    assert.throws(() => cancel(fileOf(), 'job_nope', 'alice', at(0)), /no job job_nope/);
  });

  it('a cancelled-while-queued job is never eligible again until retried', () => {
    const r = cancel(fileOf(job('job_q')), 'job_q', 'alice', at(7));
    assert.throws(() => claimJob(r.file, 'job_q', 'build1', at(8), LEASE), PreconditionError);
  });
});

// ---------------------------------------------------------------- retry

describe('retry', () => {
  it('puts a failed job back in the queue with everything of its last run cleared', () => {
    const failed = job('job_f', {
      status: 'failed',
      assigned_to: 'build2',
      attempt: 3,
      started_at: isoAt(1),
      completed_at: isoAt(2),
      reclaims: 4,
      cancel_requested: true,
      result: { summary: 'exited with 2' },
    });
    const file = deepFreeze(fileOf(failed));
    const r = retry(file, 'job_f');
    assert.equal(r.job.status, 'queued');
    assert.equal(r.job.assigned_to, null);
    assert.equal(r.job.started_at, null);
    assert.equal(r.job.completed_at, null);
    assert.equal(r.job.lease_expires_at, null);
    assert.equal(r.job.result, null);
    assert.equal(r.job.reclaims, 0);
    assert.equal(r.job.cancel_requested, false);
    assert.equal(r.job.attempt, 3, 'attempts only grow: the next claim is attempt 4');
    valid(r.file);
    assert.equal(claimJob(r.file, 'job_f', 'build1', at(3), LEASE).job.attempt, 4);
  });

  it('retries a cancelled job too', () => {
    const r = retry(cancel(fileOf(job('job_q')), 'job_q', 'alice', at(1)).file, 'job_q');
    assert.equal(r.job.status, 'queued');
  });

  it('is refused for queued, running and completed jobs', () => {
    const file = fileOf(job('job_q'), running('job_r', 'build1', 0), job('job_c', { status: 'completed' }));
    for (const id of ['job_q', 'job_r', 'job_c']) assert.throws(() => retry(file, id), /only failed or cancelled jobs can be retried/);
  });
});

// ---------------------------------------------------------------- resolveSettings

describe('resolveSettings', () => {
  const HOME = '/var/lib/buildcoord';
  const resolve = (argv: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, file: FileConfig = {}) => resolveSettings(argv, env, file, HOME);

  /** Asserts a UsageError (exit 2) whose single line matches re. */
  function usage(fn: () => unknown, re: RegExp): void {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof UsageError, `a UsageError, got ${String(e)}`);
      assert.equal(e.exitCode, 2);
      assert.ok(!e.message.includes('\n'), 'one line');
      assert.match(e.message, re);
      return true;
    });
  }

  it('has daemon-sized defaults', () => {
    const s = resolve({ builder: 'build1' });
    assert.equal(s.builder, 'build1');
    assert.equal(s.pollMs, 10_000);
    assert.equal(s.heartbeatMs, 60_000);
    assert.equal(s.leaseMs, 300_000);
    assert.equal(s.graceMs, 600_000);
    assert.equal(s.concurrency, 1);
    assert.equal(s.maxReclaims, 3);
    assert.deepEqual(s.labels, {});
    assert.equal(s.workDir, join(HOME, 'agents', 'build1'));
    assert.ok(s.leaseMs >= 2 * s.heartbeatMs, 'the defaults obey their own rule');
  });

  it('takes flags over environment over config file, field by field', () => {
    const file: FileConfig = { builder: 'fromfile', poll: '5s', heartbeat: '4s', lease: '40s', grace: '50s', concurrency: 3, max_reclaims: 7 };
    const env = { BUILDCOORD_BUILDER: 'fromenv', BUILDCOORD_POLL: '3s', BUILDCOORD_HEARTBEAT: '2s', BUILDCOORD_CONCURRENCY: '2' };
    const argv = { builder: 'fromflag', poll: '1s' };

    const all = resolve(argv, env, file);
    assert.equal(all.builder, 'fromflag');
    assert.equal(all.pollMs, 1000, 'flag wins');
    assert.equal(all.heartbeatMs, 2000, 'env over file');
    assert.equal(all.leaseMs, 40_000, 'file when nothing else says');
    assert.equal(all.graceMs, 50_000);
    assert.equal(all.concurrency, 2);
    assert.equal(all.maxReclaims, 7);
    assert.equal(all.workDir, join(HOME, 'agents', 'fromflag'));

    const noFlags = resolve({}, env, file);
    assert.equal(noFlags.builder, 'fromenv');
    assert.equal(noFlags.pollMs, 3000);

    const fileOnly = resolve({}, {}, file);
    assert.equal(fileOnly.builder, 'fromfile');
    assert.equal(fileOnly.pollMs, 5000);
    assert.equal(fileOnly.heartbeatMs, 4000);
    assert.equal(fileOnly.concurrency, 3);
  });

  it('treats an empty environment variable as unset', () => {
    assert.equal(resolve({ builder: 'b' }, { BUILDCOORD_POLL: '' }, { poll: '7s' }).pollMs, 7000);
  });

  it('keeps the config file for the job types and records the version', () => {
    const file: FileConfig = { builder: 'b', types: { tree: { command: '/bin/true', args: [] } } };
    const s = resolve({}, {}, file);
    assert.equal(s.config, file);
    assert.match(s.version, /^\d+\.\d+\.\d+|unknown$/);
  });

  it('requires a builder name, and checks it where it came from', () => {
    usage(() => resolve({}), /--builder is required/);
    usage(() => resolve({ builder: 'no spaces' }), /^--builder "no spaces": expected a name/);
    usage(() => resolve({}, { BUILDCOORD_BUILDER: '-x' }), /^BUILDCOORD_BUILDER "-x"/);
    usage(() => resolve({}, {}, { builder: '../up' }), /^config "builder" "\.\.\/up"/);
  });

  it('names the flag, the environment variable or the config field of a bad duration', () => {
    usage(() => resolve({ builder: 'b', poll: 'soon' }), /^--poll "soon": expected a duration such as 500ms/);
    usage(() => resolve({ builder: 'b' }, { BUILDCOORD_HEARTBEAT: '10 parsecs' }), /^BUILDCOORD_HEARTBEAT "10 parsecs": expected a duration/);
    usage(() => resolve({ builder: 'b' }, {}, { lease: 'forever' }), /^config "lease" "forever": expected a duration/);
    usage(() => resolve({ builder: 'b', grace: '0s' }), /^--grace "0s": must be more than 0/);
    usage(() => resolve({ builder: 'b' }, { BUILDCOORD_GRACE: '2y' }), /^BUILDCOORD_GRACE "2y"/);
  });

  it('a bad flag is an error even when the environment has a good value (the flag is what counts)', () => {
    usage(() => resolve({ builder: 'b', poll: 'x' }, { BUILDCOORD_POLL: '1s' }), /^--poll "x"/);
  });

  it('refuses a lease shorter than twice the heartbeat: the heartbeat renews it', () => {
    usage(() => resolve({ builder: 'b', heartbeat: '1s', lease: '1999ms' }), /--lease 1999 ms must be at least twice --heartbeat 1000 ms/);
    usage(() => resolve({ builder: 'b' }, {}, { heartbeat: '3m' }), /must be at least twice/);
    const ok = resolve({ builder: 'b', heartbeat: '1s', lease: '2s' });
    assert.equal(ok.leaseMs, 2000, 'exactly twice is enough');
  });

  it('checks concurrency and max-reclaims, naming where the value came from', () => {
    usage(() => resolve({ builder: 'b', concurrency: '0' }), /^--concurrency "0": expected an integer from 1 to 64/);
    usage(() => resolve({ builder: 'b' }, { BUILDCOORD_CONCURRENCY: 'many' }), /^BUILDCOORD_CONCURRENCY "many"/);
    usage(() => resolve({ builder: 'b' }, {}, { concurrency: 65 }), /^config "concurrency" "65"/);
    usage(() => resolve({ builder: 'b', 'max-reclaims': '101' }), /^--max-reclaims "101": expected an integer from 1 to 100/);
    usage(() => resolve({ builder: 'b' }, {}, { max_reclaims: 0 }), /^config "max_reclaims" "0"/);
  });

  it('takes labels from flags, else the environment, else the file; never merged', () => {
    const file: FileConfig = { labels: { arch: 'amd64', os: 'debian' } };
    assert.deepEqual(resolve({ builder: 'b' }, {}, file).labels, { arch: 'amd64', os: 'debian' });
    assert.deepEqual(resolve({ builder: 'b' }, { BUILDCOORD_LABELS: 'arch=arm64,gpu=yes' }, file).labels, { arch: 'arm64', gpu: 'yes' });
    assert.deepEqual(resolve({ builder: 'b', label: ['arch=riscv'] }, { BUILDCOORD_LABELS: 'gpu=yes' }, file).labels, { arch: 'riscv' });
    assert.deepEqual(resolve({ builder: 'b', label: 'one=1' }).labels, { one: '1' });
    usage(() => resolve({ builder: 'b', label: ['novalue'] }), /^--label "novalue": expected key=value/);
  });

  it('does not let the labels of the file be changed through the result', () => {
    const file: FileConfig = { labels: { arch: 'amd64' } };
    const s = resolve({ builder: 'b' }, {}, file);
    s.labels.arch = 'changed';
    assert.equal(file.labels!.arch, 'amd64');
  });
});

// ---------------------------------------------------------------- automatic retries, cancels that outlive their builder

describe('automatic retries (--retries)', () => {
  it('a failed attempt goes back to the queue while retries are left, then fails for good', () => {
    let file: JobsFile = fileOf(running('job_a', 'build1', 0, 1, { retries: 2 }));
    const first = complete(file, 'job_a', 'build1', 1, 'failed', at(10), { summary: 'make exited with 2' });
    assert.equal(first.job.status, 'queued');
    assert.equal(first.job.assigned_to, null);
    assert.equal(first.job.completed_at, null);
    assert.equal(first.job.retried, 1);
    assert.match(String(first.job.result?.summary), /^attempt 1 failed on build1; automatic retry 1 of 2: make exited with 2$/);
    valid(first.file);
    file = claimJob(first.file, 'job_a', 'build2', at(20), LEASE).file;
    const second = complete(file, 'job_a', 'build2', 2, 'failed', at(30), { summary: 'again' });
    assert.equal(second.job.status, 'queued');
    assert.equal(second.job.retried, 2);
    file = claimJob(second.file, 'job_a', 'build1', at(40), LEASE).file;
    const third = complete(file, 'job_a', 'build1', 3, 'failed', at(50), { summary: 'third time' });
    assert.equal(third.job.status, 'failed', 'no retries left');
    assert.equal(third.job.result?.summary, 'third time');
    assert.equal(third.job.completed_at, isoAt(50));
  });

  it('never retries a success, a cancel, or a job without retries; a manual retry gives a fresh budget', () => {
    assert.equal(complete(fileOf(running('job_a', 'build1', 0, 1, { retries: 2 })), 'job_a', 'build1', 1, 'completed', at(5)).job.status, 'completed');
    assert.equal(complete(fileOf(running('job_a', 'build1', 0, 1, { retries: 2 })), 'job_a', 'build1', 1, 'cancelled', at(5)).job.status, 'cancelled');
    assert.equal(complete(fileOf(running('job_a', 'build1', 0)), 'job_a', 'build1', 1, 'failed', at(5)).job.status, 'failed');
    const spent = fileOf(job('job_a', { status: 'failed', retries: 1, retried: 1, attempt: 2, completed_at: isoAt(5) }));
    assert.equal(retry(spent, 'job_a').job.retried, 0);
  });
});

describe('a cancel whose builder never carried it out', () => {
  it('reclaimed from a silent builder, a job with a cancel request ends cancelled instead of queued', () => {
    const r = reclaimExpired(fileOf(running('job_a', 'build2', 0, 1, { cancel_requested: true })), new Map(), at(100), LEASE, 3, 'build1');
    assert.equal(r.reclaimed.length, 1);
    assert.equal(r.reclaimed[0]!.job.status, 'cancelled');
    assert.equal(r.reclaimed[0]!.failed, false);
    assert.equal(r.reclaimed[0]!.job.completed_at, isoAt(100));
    assert.match(String(r.reclaimed[0]!.job.result?.summary), /build2 went silent before it stopped attempt 1/);
    valid(r.file);
  });

  it('handed back by its holder (drain), it ends cancelled too', () => {
    const r = handBack(fileOf(running('job_a', 'build1', 0, 1, { cancel_requested: true })), 'job_a', 'build1', 1, at(7));
    assert.equal(r.job.status, 'cancelled');
    assert.equal(r.job.completed_at, isoAt(7));
  });

  it('a job running with nobody holding it (a hand edit) is reclaimed at once, and cancelled at once', () => {
    const orphan = running('job_a', 'x', 0, 1, { assigned_to: null, lease_expires_at: isoAt(1000) });
    const r = reclaimExpired(fileOf(orphan), new Map(), at(1), LEASE, 3, 'build1');
    assert.equal(r.reclaimed[0]?.job.status, 'queued');
    assert.equal(r.reclaimed[0]?.from, 'nobody');
    const c = cancel(fileOf(orphan), 'job_a', 'alice', at(2));
    assert.equal(c.job.status, 'cancelled');
  });
});
