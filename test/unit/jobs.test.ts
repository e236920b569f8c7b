// The job queue's pure core (agent/model/jobs.ts) with a fake clock: every
// time is a plain Date handed in, nothing reads the real clock, nothing runs git.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PreconditionError, UsageError } from '../../agent/errors.js';
import {
  blocker,
  claim,
  claimJob,
  compareQueue,
  complete,
  eligible,
  emptyJobs,
  enqueue,
  enqueueMany,
  findJob,
  JOBS_SCHEMA_REF,
  newId,
  renewLease,
  runOrder,
  type BuilderFacts,
  type JobInput,
} from '../../agent/model/jobs.js';
import { JOB_ID_RE, MSG_ID_RE } from '../../agent/model/input.js';
import type { Job, JobsFile, JobStatus } from '../../agent/model/types.js';
import { validateDoc } from '../../agent/model/validate.js';
import { queuedJob } from '../helpers/jobs.js';

const T0 = new Date('2025-03-04T05:06:07.890Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const LEASE = 10 * 60_000;

function input(over: Partial<JobInput> = {}): JobInput {
  return { type: 'make', priority: 5, source: null, branch: 'main', commit: null, description: '', dependencies: [], ...over };
}

/** A queued job as enqueue makes it, with fields overridden for the case at hand. */
function job(id: string, over: Partial<Job> = {}): Job {
  return queuedJob(id, T0.toISOString(), over);
}

function fileOf(...jobs: Job[]): JobsFile {
  return { $schema: JOBS_SCHEMA_REF, version: 1, jobs };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/**
 * Calls fn on a frozen deep copy of file (a write to it throws in strict
 * mode) and checks that file is deep-equal to before afterwards.
 */
function pure<R>(file: JobsFile, fn: (f: JobsFile) => R): R {
  const before = structuredClone(file);
  const frozen = deepFreeze(structuredClone(file));
  const r = fn(frozen);
  assert.deepEqual(frozen, before, 'the input file is left as it was');
  return r;
}

const b1: BuilderFacts = { name: 'build1' };

describe('newId', () => {
  it('is prefix, UTC second and 10 hex digits of randomness', () => {
    const id = newId('job', T0, Buffer.from([0x01, 0x23, 0x45, 0x67, 0x89]));
    assert.equal(id, 'job_20250304T050607Z_0123456789');
    assert.match(id, JOB_ID_RE);
    const msg = newId('msg', T0, Buffer.from('abcdefghij'));
    assert.match(msg, /^msg_20250304T050607Z_[0-9a-f]{10}$/);
    assert.match(msg, MSG_ID_RE);
  });

  it('differs for the same millisecond when the random bytes differ, and only then', () => {
    const a = newId('job', T0, Buffer.from([1, 2, 3, 4, 5]));
    const b = newId('job', new Date(T0.getTime()), Buffer.from([1, 2, 3, 4, 6]));
    assert.notEqual(a, b);
    // Same second, same bytes: the same id. Uniqueness rests on the random bits.
    assert.equal(newId('job', at(0.05), Buffer.from([1, 2, 3, 4, 5])), a);
  });

  it('sorts by time', () => {
    const r = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]);
    const z = Buffer.from([0, 0, 0, 0, 0]);
    assert.ok(newId('job', T0, r) < newId('job', at(1), z));
    assert.ok(newId('job', at(1), r) < newId('job', new Date('2026-01-01T00:00:00Z'), z));
  });

  it('uses only the first 5 random bytes', () => {
    assert.equal(newId('job', T0, Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11])), 'job_20250304T050607Z_aabbccddee');
  });
});

describe('enqueue / enqueueMany', () => {
  it('fills the defaults of a new queued job', () => {
    const { file, job: j } = pure(emptyJobs(), (f) => enqueue(f, input(), 'job_a', 'tester', T0));
    assert.deepEqual(j, {
      id: 'job_a',
      type: 'make',
      priority: 5,
      source: null,
      branch: 'main',
      commit: null,
      description: '',
      dependencies: [],
      assigned_to: null,
      status: 'queued',
      created_at: '2025-03-04T05:06:07.890Z',
      created_by: 'tester',
      started_at: null,
      completed_at: null,
      attempt: 0,
      lease_expires_at: null,
    });
    assert.deepEqual(file, { $schema: JOBS_SCHEMA_REF, version: 1, jobs: [j] });
    assert.deepEqual(validateDoc('coordination/jobs.json', file), []);
  });

  it('keeps the optional fields when set and leaves empty ones out', () => {
    const full = enqueue(
      emptyJobs(),
      input({ on: 'build2', labels: { os: 'linux' }, timeout_seconds: 60, retries: 2, dependencies: [] }),
      'job_a',
      'tester',
      T0,
    ).job;
    assert.equal(full.on, 'build2');
    assert.deepEqual(full.labels, { os: 'linux' });
    assert.equal(full.timeout_seconds, 60);
    assert.equal(full.retries, 2);
    const bare = enqueue(emptyJobs(), input({ on: null, labels: {}, timeout_seconds: null, retries: 0 }), 'job_a', 'tester', T0).job;
    for (const k of ['on', 'labels', 'timeout_seconds', 'retries'] as const) assert.equal(k in bare, false, `${k} is left out`);
  });

  it('appends to existing jobs and removes repeated dependencies', () => {
    const start = fileOf(job('job_x', { status: 'completed' }));
    const { file, job: j } = pure(start, (f) => enqueue(f, input({ dependencies: ['job_x', 'job_x'] }), 'job_y', 'tester', at(5)));
    assert.deepEqual(
      file.jobs.map((x) => x.id),
      ['job_x', 'job_y'],
    );
    assert.deepEqual(j.dependencies, ['job_x']);
    assert.equal(j.created_at, at(5).toISOString());
  });

  it('refuses a dependency on an unknown job with a UsageError naming --after', () => {
    assert.throws(
      () => pure(fileOf(job('job_x')), (f) => enqueue(f, input({ dependencies: ['job_nope'] }), 'job_y', 'tester', T0)),
      (e: unknown) => e instanceof UsageError && /--after job_nope/.test(e.message),
    );
  });

  it('refuses a job that depends on itself', () => {
    assert.throws(() => enqueue(emptyJobs(), input({ dependencies: ['job_a'] }), 'job_a', 'tester', T0), UsageError);
  });

  it('accepts a dependency on an earlier job of the same batch, in one new file', () => {
    const { file, jobs } = pure(emptyJobs(), (f) =>
      enqueueMany(
        f,
        [
          { ...input(), id: 'job_a' },
          { ...input({ dependencies: ['job_a'] }), id: 'job_b' },
        ],
        'tester',
        T0,
      ),
    );
    assert.deepEqual(
      jobs.map((j) => [j.id, j.dependencies]),
      [
        ['job_a', []],
        ['job_b', ['job_a']],
      ],
    );
    assert.deepEqual(file.jobs, jobs);
  });

  it('refuses the whole batch when one dependency is unknown', () => {
    const start = fileOf(job('job_x'));
    assert.throws(
      () =>
        pure(start, (f) =>
          enqueueMany(
            f,
            [
              { ...input(), id: 'job_a' },
              { ...input({ dependencies: ['job_zzz'] }), id: 'job_b' },
            ],
            'tester',
            T0,
          ),
        ),
      UsageError,
    );
  });

  it('refuses a duplicate id, against the file or within the batch, with a PreconditionError', () => {
    assert.throws(() => enqueue(fileOf(job('job_x')), input(), 'job_x', 'tester', T0), (e: unknown) => e instanceof PreconditionError && /job_x already exists/.test((e as Error).message));
    assert.throws(
      () =>
        enqueueMany(
          emptyJobs(),
          [
            { ...input(), id: 'job_a' },
            { ...input(), id: 'job_a' },
          ],
          'tester',
          T0,
        ),
      PreconditionError,
    );
  });

  it('does not mutate or share the input objects', () => {
    const inp = input({ dependencies: ['job_x'], labels: { os: 'linux' } });
    const frozen = deepFreeze(structuredClone(inp));
    const { job: j } = enqueue(fileOf(job('job_x')), frozen, 'job_y', 'tester', T0);
    assert.deepEqual(frozen, inp);
    assert.notEqual(j.dependencies, frozen.dependencies);
    assert.notEqual(j.labels, frozen.labels);
    j.labels!.extra = 'x';
    assert.deepEqual(frozen.labels, { os: 'linux' });
  });

  it('returns a new file object and a new jobs array', () => {
    const start = fileOf(job('job_x'));
    const { file } = enqueue(start, input(), 'job_y', 'tester', T0);
    assert.notEqual(file, start);
    assert.notEqual(file.jobs, start.jobs);
    assert.equal(start.jobs.length, 1);
  });
});

describe('queue order', () => {
  it('is priority 1 first, then created_at, then id', () => {
    const jobs = [
      job('job_c', { priority: 5, created_at: at(0).toISOString() }),
      job('job_b', { priority: 5, created_at: at(0).toISOString() }),
      job('job_late_high', { priority: 1, created_at: at(100).toISOString() }),
      job('job_old', { priority: 5, created_at: at(-100).toISOString() }),
      job('job_low', { priority: 10, created_at: at(-1000).toISOString() }),
    ];
    const sorted = [...jobs].sort(compareQueue).map((j) => j.id);
    assert.deepEqual(sorted, ['job_late_high', 'job_old', 'job_b', 'job_c', 'job_low']);
    const elig = pure(fileOf(...jobs), (f) => eligible(f, b1)).map((j) => j.id);
    assert.deepEqual(elig, sorted);
  });

  it('compares creation times as instants: a hand-written "…:00Z" is older than "…:00.500Z" of the same second', () => {
    const hand = job('job_z_hand', { created_at: '2025-06-01T12:00:00Z' });
    const cli = job('job_a_cli', { created_at: '2025-06-01T12:00:00.500Z' });
    assert.deepEqual([cli, hand].sort(compareQueue).map((j) => j.id), ['job_z_hand', 'job_a_cli']);
  });

  it('is a total order: equal only for the same id', () => {
    const a = job('job_a');
    assert.equal(compareQueue(a, job('job_a')), 0);
    assert.ok(compareQueue(a, job('job_b')) < 0);
    assert.ok(compareQueue(job('job_b'), a) > 0);
  });
});

describe('eligibility and blockers', () => {
  const withDep = (status: JobStatus) => fileOf(job('job_dep', { status }), job('job_me', { dependencies: ['job_dep'] }));

  it('waits for dependencies until they completed', () => {
    for (const [status, want] of [
      ['completed', null],
      ['running', 'dependencies'],
      ['queued', 'dependencies'],
      ['failed', 'dependency-failed'],
      ['cancelled', 'dependency-failed'],
    ] as const) {
      const f = withDep(status);
      assert.equal(
        pure(f, (ff) => blocker(ff, ff.jobs[1]!)),
        want,
        `dependency ${status}`,
      );
      const ids = eligible(f, b1).map((j) => j.id);
      assert.equal(ids.includes('job_me'), want === null, `job_me eligible with its dependency ${status}`);
    }
  });

  it('calls a dependency missing from the file failed', () => {
    const f = fileOf(job('job_me', { dependencies: ['job_gone'] }));
    assert.equal(blocker(f, f.jobs[0]!), 'dependency-failed');
  });

  it('honours pinning with on', () => {
    const f = fileOf(job('job_p', { on: 'build2' }));
    assert.equal(blocker(f, f.jobs[0]!, b1), 'pinned');
    assert.equal(blocker(f, f.jobs[0]!, { name: 'build2' }), null);
    assert.equal(blocker(f, f.jobs[0]!), null, 'without a builder, pinning is not a blocker');
    assert.deepEqual(eligible(f, b1), []);
    assert.deepEqual(
      eligible(f, { name: 'build2' }).map((j) => j.id),
      ['job_p'],
    );
  });

  it('needs every label with the same value', () => {
    const f = fileOf(job('job_l', { labels: { os: 'linux', arch: 'arm64' } }));
    const j = f.jobs[0]!;
    assert.equal(blocker(f, j, b1), 'labels');
    assert.equal(blocker(f, j, { name: 'b', labels: { os: 'linux' } }), 'labels');
    assert.equal(blocker(f, j, { name: 'b', labels: { os: 'linux', arch: 'x86_64' } }), 'labels');
    assert.equal(blocker(f, j, { name: 'b', labels: { os: 'linux', arch: 'arm64', extra: 'y' } }), null);
  });

  it('matches the builder types; undefined types means any', () => {
    const f = fileOf(job('job_t', { type: 'deb' }));
    const j = f.jobs[0]!;
    assert.equal(blocker(f, j, { name: 'b', types: ['maven', 'make'] }), 'type');
    assert.equal(blocker(f, j, { name: 'b', types: [] }), 'type');
    assert.equal(blocker(f, j, { name: 'b', types: ['deb'] }), null);
    assert.equal(blocker(f, j, { name: 'b' }), null);
  });

  it('leaves out jobs that are not queued or have cancel_requested', () => {
    const f = fileOf(
      job('job_run', { status: 'running', assigned_to: 'build2', attempt: 1 }),
      job('job_done', { status: 'completed' }),
      job('job_fail', { status: 'failed' }),
      job('job_cancel', { status: 'cancelled' }),
      job('job_stop', { cancel_requested: true }),
      job('job_ok'),
    );
    assert.deepEqual(
      pure(f, (ff) => eligible(ff, b1)).map((j) => j.id),
      ['job_ok'],
    );
  });
});

describe('claim', () => {
  it('takes the best eligible job: running, attempt + 1, started_at, lease from now', () => {
    const f = fileOf(job('job_low', { priority: 9 }), job('job_high', { priority: 2, attempt: 2, result: { summary: 'earlier failure' } }));
    const now = at(30);
    const { file, job: j } = pure(f, (ff) => claim(ff, b1, now, LEASE));
    assert.equal(j.id, 'job_high');
    assert.equal(j.status, 'running');
    assert.equal(j.assigned_to, 'build1');
    assert.equal(j.attempt, 3);
    assert.equal(j.started_at, now.toISOString());
    assert.equal(j.completed_at, null);
    assert.equal(j.lease_expires_at, new Date(now.getTime() + LEASE).toISOString());
    assert.equal(j.result, null, 'an earlier result is cleared');
    assert.deepEqual(file.jobs[1], j);
    assert.deepEqual(file.jobs[0], f.jobs[0]);
    assert.notEqual(file, f);
    assert.deepEqual(validateDoc('coordination/jobs.json', file), []);
  });

  it('counts attempts up across claims of the same job', () => {
    let f = fileOf(job('job_a'));
    let r = claim(f, b1, at(0), LEASE);
    assert.equal(r.job.attempt, 1);
    // As a reclaim would: back to the queue, keeping the attempt count.
    f = fileOf({ ...r.job, status: 'queued', assigned_to: null, lease_expires_at: null });
    r = claim(f, { name: 'build2' }, at(60), LEASE);
    assert.equal(r.job.attempt, 2);
    assert.equal(r.job.assigned_to, 'build2');
  });

  it('refuses with PreconditionError "no eligible job" when nothing fits', () => {
    for (const f of [emptyJobs(), fileOf(job('job_p', { on: 'build2' })), fileOf(job('job_r', { status: 'running', assigned_to: 'build2', attempt: 1 }))]) {
      assert.throws(
        () => pure(f, (ff) => claim(ff, b1, T0, LEASE)),
        (e: unknown) => e instanceof PreconditionError && e.message === 'no eligible job',
      );
    }
  });

  it('claimJob refuses a job that is not queued', () => {
    const f = fileOf(job('job_r', { status: 'running', assigned_to: 'build2', attempt: 1 }));
    assert.throws(() => pure(f, (ff) => claimJob(ff, 'job_r', 'build1', T0, LEASE)), /job job_r is running on build2, not queued/);
  });
});

describe('fencing: complete and renewLease', () => {
  function running(): JobsFile {
    return claim(fileOf(job('job_a'), job('job_other')), b1, at(0), LEASE).file;
  }

  it('completes for the holder and attempt: status, completed_at, no lease, result', () => {
    const f = running();
    const { file, job: j } = pure(f, (ff) => complete(ff, 'job_a', 'build1', 1, 'completed', at(90), { summary: 'ok', exit_code: 0 }));
    assert.equal(j.status, 'completed');
    assert.equal(j.completed_at, at(90).toISOString());
    assert.equal(j.lease_expires_at, null);
    assert.equal(j.assigned_to, 'build1');
    assert.equal(j.attempt, 1);
    assert.deepEqual(j.result, { summary: 'ok', exit_code: 0 });
    assert.deepEqual(file.jobs[1], f.jobs[1]);
    assert.deepEqual(validateDoc('coordination/jobs.json', file), []);
    assert.equal(complete(f, 'job_a', 'build1', 1, 'failed', at(90)).job.result, null);
  });

  it('refuses a wrong builder, a wrong attempt, and a job already finished', () => {
    const f = running();
    const refused = (fn: (ff: JobsFile) => unknown, re: RegExp) =>
      assert.throws(
        () => pure(f, fn),
        (e: unknown) => e instanceof PreconditionError && re.test((e as Error).message),
      );
    refused((ff) => complete(ff, 'job_a', 'build2', 1, 'completed', at(5)), /attempt 1 on build2 is no longer current: the job is attempt 1 on build1/);
    refused((ff) => complete(ff, 'job_a', 'build1', 2, 'completed', at(5)), /attempt 2 on build1 is no longer current/);
    refused((ff) => complete(ff, 'job_a', 'build1', 0, 'failed', at(5)), /no longer current/);
    refused((ff) => renewLease(ff, 'job_a', 'build2', 1, at(5), LEASE), /no longer current/);
    refused((ff) => renewLease(ff, 'job_a', 'build1', 7, at(5), LEASE), /no longer current/);
    refused((ff) => complete(ff, 'job_other', 'build1', 1, 'completed', at(5)), /the job is queued/);

    const done = complete(f, 'job_a', 'build1', 1, 'completed', at(5)).file;
    assert.throws(() => pure(done, (ff) => complete(ff, 'job_a', 'build1', 1, 'failed', at(6))), /no longer current: the job is completed \(last on build1, attempt 1\)/);
    assert.throws(() => pure(done, (ff) => renewLease(ff, 'job_a', 'build1', 1, at(6), LEASE)), PreconditionError);
  });

  it('renews the lease from now for the holder and changes nothing else', () => {
    const f = running();
    const { file, job: j } = pure(f, (ff) => renewLease(ff, 'job_a', 'build1', 1, at(300), LEASE));
    assert.equal(j.lease_expires_at, new Date(at(300).getTime() + LEASE).toISOString());
    assert.deepEqual({ ...j, lease_expires_at: null }, { ...f.jobs[0], lease_expires_at: null });
    assert.notEqual(file, f);
  });
});

describe('runOrder', () => {
  it('puts running first, then the queue in claim order, then failed, cancelled and completed', () => {
    const f = fileOf(
      job('job_done', { status: 'completed', priority: 1 }),
      job('job_q_low', { priority: 9 }),
      job('job_cancel', { status: 'cancelled' }),
      job('job_run_low', { status: 'running', priority: 8, assigned_to: 'build1', attempt: 1 }),
      job('job_fail', { status: 'failed' }),
      job('job_q_high', { priority: 1, created_at: at(50).toISOString() }),
      job('job_run_high', { status: 'running', priority: 2, assigned_to: 'build2', attempt: 1 }),
    );
    const order = pure(f, (ff) => runOrder(ff)).map((j) => j.id);
    assert.deepEqual(order, ['job_run_high', 'job_run_low', 'job_q_high', 'job_q_low', 'job_fail', 'job_cancel', 'job_done']);
  });

  it('returns a new array', () => {
    const f = fileOf(job('job_b', { priority: 9 }), job('job_a', { priority: 1 }));
    const order = runOrder(f);
    assert.notEqual(order, f.jobs);
    assert.deepEqual(
      f.jobs.map((j) => j.id),
      ['job_b', 'job_a'],
    );
  });
});

describe('findJob', () => {
  const f = fileOf(job('job_20250304T050607Z_aaaaaaaaaa'), job('job_20250304T050607Z_aabbbbbbbb'), job('job_20250305T000000Z_cccccccccc'));

  it('finds an exact id', () => {
    assert.equal(pure(f, (ff) => findJob(ff, 'job_20250304T050607Z_aaaaaaaaaa')).id, 'job_20250304T050607Z_aaaaaaaaaa');
  });

  it('finds a unique prefix of at least 8 characters', () => {
    assert.equal(findJob(f, 'job_20250305').id, 'job_20250305T000000Z_cccccccccc');
    assert.equal(findJob(f, 'job_20250304T050607Z_aaa').id, 'job_20250304T050607Z_aaaaaaaaaa');
  });

  it('refuses an ambiguous prefix with a UsageError saying how many match', () => {
    assert.throws(
      () => findJob(f, 'job_20250304T050607Z_aa'),
      (e: unknown) => e instanceof UsageError && /ambiguous: 2 jobs start with it/.test(e.message),
    );
  });

  it('refuses a short prefix and an unknown id', () => {
    assert.throws(() => findJob(f, 'job_202'), /no job job_202 in coordination\/jobs.json/);
    assert.throws(() => findJob(f, 'job_nope'), UsageError);
    assert.throws(() => findJob(emptyJobs(), 'job_20250304T050607Z_aaaaaaaaaa'), UsageError);
  });
});

describe('emptyJobs', () => {
  it('is a valid jobs file and a new object each time', () => {
    const a = emptyJobs();
    assert.deepEqual(validateDoc('coordination/jobs.json', a), []);
    a.jobs.push(job('job_x'));
    assert.deepEqual(emptyJobs().jobs, []);
  });
});
