// Canonical JSON (agent/model/canonical.ts): the same state always gives the
// same bytes, in the key order the file's schema declares.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson } from '../../agent/model/canonical.js';
import { schemaFor } from '../../agent/model/validate.js';

const jobsSchema = schemaFor('coordination/jobs.json')!;
const locksSchema = schemaFor('coordination/locks.json')!;

type Obj = Record<string, unknown>;

const defs = (schema: Obj, name: string) => ((schema.$defs as Obj)[name] as Obj).properties as Obj;
const JOB_KEYS = Object.keys(defs(jobsSchema, 'job'));
const RESULT_KEYS = Object.keys((defs(jobsSchema, 'job').result as Obj).properties as Obj);
const LOCK_KEYS = Object.keys(defs(locksSchema, 'lock'));

/** The same object with its keys in reverse order (deep), to show order comes from the schema, not the input. */
function reversed(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversed);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v as Obj)
      .reverse()
      .map(([k, x]) => [k, reversed(x)]),
  );
}

function fullJob(id: string): Obj {
  return {
    id,
    type: 'make',
    priority: 5,
    source: null,
    branch: 'main',
    commit: null,
    description: 'd',
    dependencies: [],
    assigned_to: 'build1',
    status: 'completed',
    created_at: '2025-01-01T00:00:00Z',
    created_by: 'tester',
    started_at: '2025-01-01T00:00:01Z',
    completed_at: '2025-01-01T00:00:02Z',
    attempt: 1,
    lease_expires_at: null,
    on: 'build1',
    labels: { zz: '1', aa: '2', mm: '3' },
    timeout_seconds: 60,
    retries: 1,
    cancel_requested: false,
    result: { zextra: 1, manifest: null, log: null, aextra: 2, duration_seconds: 3, exit_code: 0, summary: 'ok' },
  };
}

/** Keys of every object in parse order, with their JSON path. */
function keysOf(text: string): Obj {
  return JSON.parse(text) as Obj;
}

describe('canonicalJson with a schema', () => {
  it('puts $schema first, then the schema property order', () => {
    const text = canonicalJson({ jobs: [], version: 1, $schema: '../schemas/jobs.schema.json' }, jobsSchema);
    assert.deepEqual(Object.keys(keysOf(text)), ['$schema', 'version', 'jobs']);
    assert.equal(text, '{\n  "$schema": "../schemas/jobs.schema.json",\n  "version": 1,\n  "jobs": []\n}\n');
  });

  it('covers every field of the job schema it knows about in fullJob', () => {
    for (const k of Object.keys(fullJob('x'))) assert.ok(JOB_KEYS.includes(k), k);
  });

  it('orders every job in the array by the job schema ($ref), whatever the input order', () => {
    const doc = { version: 1, jobs: [fullJob('job_a'), fullJob('job_b')], $schema: 'x' };
    const text = canonicalJson(reversed(doc), jobsSchema);
    const parsed = keysOf(text);
    // Only the schema's keys this job has (the schema may grow fields fullJob lacks).
    for (const job of parsed.jobs as Obj[]) assert.deepEqual(Object.keys(job), JOB_KEYS.filter((k) => k in fullJob('x')));
    assert.equal(text, canonicalJson(doc, jobsSchema), 'the input key order does not matter');
  });

  it('sorts keys the schema does not name after the known ones', () => {
    const job = { zeta: 1, ...fullJob('job_a'), alpha: 2, Beta: 3 };
    const text = canonicalJson({ version: 1, jobs: [reversed(job)], extra_top: true, $schema: 'x', aaa_top: 0 }, jobsSchema);
    const parsed = keysOf(text);
    assert.deepEqual(Object.keys(parsed), ['$schema', 'version', 'jobs', 'aaa_top', 'extra_top']);
    assert.deepEqual(Object.keys((parsed.jobs as Obj[])[0]!), [...JOB_KEYS.filter((k) => k in job), 'Beta', 'alpha', 'zeta']);
  });

  it('sorts the keys of a map (additionalProperties) and orders a nested object with properties', () => {
    const parsed = keysOf(canonicalJson({ version: 1, jobs: [fullJob('job_a')] }, jobsSchema));
    const job = (parsed.jobs as Obj[])[0]!;
    assert.deepEqual(Object.keys(job.labels as Obj), ['aa', 'mm', 'zz']);
    assert.deepEqual(Object.keys(job.result as Obj), [...RESULT_KEYS.filter((k) => k in (fullJob('x').result as Obj)), 'aextra', 'zextra']);
  });

  it('orders the values of a map by the schema they $ref (locks.json)', () => {
    const lock = { note: 'n', token: 3, expires_at: '2025-01-01T00:10:00Z', locked_at: '2025-01-01T00:00:00Z', locked_by: 'build1', zz: 1 };
    const parsed = keysOf(canonicalJson({ locks: { zlock: lock, alock: lock }, next_token: 4, version: 1, $schema: 's' }, locksSchema));
    assert.deepEqual(Object.keys(parsed), ['$schema', 'version', 'next_token', 'locks']);
    assert.deepEqual(Object.keys(parsed.locks as Obj), ['alock', 'zlock']);
    assert.deepEqual(Object.keys((parsed.locks as Obj).alock as Obj), [...LOCK_KEYS.filter((k) => k in lock), 'zz']);
  });

  it('drops undefined values, at the top and nested', () => {
    const job = { ...fullJob('job_a'), on: undefined, result: { summary: 'x', exit_code: undefined, other: undefined } };
    const text = canonicalJson({ version: 1, jobs: [job], $schema: undefined, extra: undefined }, jobsSchema);
    const parsed = keysOf(text);
    assert.deepEqual(Object.keys(parsed), ['version', 'jobs']);
    const out = (parsed.jobs as Obj[])[0]!;
    assert.equal('on' in out, false);
    assert.deepEqual(out.result, { summary: 'x' });
  });

  it('is 2-space indented and ends in exactly one newline', () => {
    for (const v of [{ version: 1, jobs: [fullJob('job_a')] }, { version: 1, jobs: [] }]) {
      const text = canonicalJson(v, jobsSchema);
      assert.ok(text.endsWith('}\n') && !text.endsWith('\n\n'), JSON.stringify(text.slice(-5)));
      assert.equal(text, JSON.stringify(JSON.parse(text), null, 2) + '\n');
    }
  });

  it('is idempotent: canonical of the parsed canonical text is the same text', () => {
    const doc = { zz: [1, { b: 2, a: 1 }], version: 1, jobs: [reversed(fullJob('job_b')), fullJob('job_a')], $schema: 's' };
    const once = canonicalJson(doc, jobsSchema);
    const twice = canonicalJson(JSON.parse(once), jobsSchema);
    assert.equal(twice, once);
    assert.equal(canonicalJson(JSON.parse(twice), jobsSchema), once);
  });

  it('keeps the array order and the values as they are', () => {
    const doc = { version: 1, jobs: [fullJob('job_b'), fullJob('job_a')] };
    const parsed = keysOf(canonicalJson(doc, jobsSchema));
    assert.deepEqual(
      (parsed.jobs as Obj[]).map((j) => j.id),
      ['job_b', 'job_a'],
    );
    assert.deepEqual(parsed, JSON.parse(JSON.stringify(doc)));
  });

  it('leaves its input and the (frozen) schema alone', () => {
    const doc = { jobs: [reversed(fullJob('job_a'))], version: 1 };
    const before = structuredClone(doc);
    canonicalJson(doc, jobsSchema);
    assert.deepEqual(doc, before);
    assert.deepEqual(Object.keys(doc), ['jobs', 'version']);
  });

  it('keeps keys that share a name with Object.prototype members (labels, result, unknown keys)', () => {
    // `k in props` is true for inherited names such as "constructor", so such
    // a key is neither in the schema's list nor among the sorted rest, and is
    // silently dropped: `job add --label constructor=yes` loses the label.
    const names = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf'];
    const labels = Object.fromEntries(names.map((n) => [n, 'yes']));
    const job = { ...fullJob('job_a'), labels: { os: 'linux', ...labels }, result: { summary: 'x', ...labels } };
    const text = canonicalJson({ version: 1, jobs: [job], ...labels }, jobsSchema);
    const parsed = keysOf(text);
    const out = (parsed.jobs as Obj[])[0]!;
    const lost = [
      ...names.filter((n) => !Object.hasOwn(parsed, n)).map((n) => `/${n}`),
      ...names.filter((n) => !Object.hasOwn(out.labels as Obj, n)).map((n) => `/jobs/0/labels/${n}`),
      ...names.filter((n) => !Object.hasOwn(out.result as Obj, n)).map((n) => `/jobs/0/result/${n}`),
    ];
    assert.deepEqual(lost, [], `keys dropped: ${lost.join(', ')}`);
  });

  it('keeps a "__proto__" key of parsed JSON', () => {
    // JSON.parse makes "__proto__" an own property; assigning it to a fresh
    // object literal sets the prototype instead and the key disappears.
    const doc = JSON.parse('{"version": 1, "jobs": [], "__proto__": {"x": 1}}') as unknown;
    assert.deepEqual(Object.keys(keysOf(canonicalJson(doc, jobsSchema))), ['version', 'jobs', '__proto__']);
    assert.ok(Object.hasOwn(keysOf(canonicalJson(doc)), '__proto__'), 'without a schema too');
  });
});

describe('canonicalJson without a schema', () => {
  it('sorts keys at every depth, $schema first', () => {
    const text = canonicalJson({ b: 1, a: { d: [{ z: 1, y: { q: 1, p: 2 } }], c: 2 }, $schema: 'x', A: 0 });
    assert.equal(
      text,
      [
        '{',
        '  "$schema": "x",',
        '  "A": 0,',
        '  "a": {',
        '    "c": 2,',
        '    "d": [',
        '      {',
        '        "y": {',
        '          "p": 2,',
        '          "q": 1',
        '        },',
        '        "z": 1',
        '      }',
        '    ]',
        '  },',
        '  "b": 1',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('puts $schema before keys that sort lower than "$"', () => {
    assert.deepEqual(Object.keys(keysOf(canonicalJson({ '!x': 1, ' y': 2, $schema: 's' }))), ['$schema', ' y', '!x']);
  });

  it('drops undefined, ends in one newline, and is idempotent', () => {
    const text = canonicalJson({ b: undefined, a: { c: undefined, d: 1 } });
    assert.equal(text, '{\n  "a": {\n    "d": 1\n  }\n}\n');
    assert.equal(canonicalJson(JSON.parse(text)), text);
  });

  it('treats a null schema like no schema, and handles scalars and arrays', () => {
    assert.equal(canonicalJson({ b: 1, a: 2 }, null), '{\n  "a": 2,\n  "b": 1\n}\n');
    assert.equal(canonicalJson([3, 'x', null]), '[\n  3,\n  "x",\n  null\n]\n');
    assert.equal(canonicalJson('s'), '"s"\n');
  });
});
