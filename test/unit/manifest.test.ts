// jobManifest (agent/builds/manifest.ts): the facts the executor gathered,
// as the JSON document pushed beside a job's log.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobManifest, type ManifestFacts } from '../../agent/builds/manifest.js';

const facts = (over: Partial<ManifestFacts> = {}): ManifestFacts => ({
  job: { id: 'job_20260101T000000Z_0000000001', attempt: 2, type: 'make', branch: 'main' },
  builder: 'build1',
  source: '/srv/src.git',
  commit: null,
  status: 'failed',
  summary: 'refused: branch "a|b" contains shell metacharacters: refused before anything ran',
  startedAt: new Date('2026-01-01T00:00:00.000Z'),
  finishedAt: new Date('2026-01-01T00:00:01.260Z'),
  durationMs: 1260,
  mode: null,
  steps: [],
  artifactsDir: null,
  artifacts: [],
  ...over,
});

describe('jobManifest', () => {
  it('says who, what, from where and how it ended, even for a job that never ran anything', () => {
    assert.deepEqual(jobManifest(facts()), {
      job: 'job_20260101T000000Z_0000000001',
      attempt: 2,
      builder: 'build1',
      type: 'make',
      source: '/srv/src.git',
      branch: 'main',
      commit: null,
      status: 'failed',
      summary: 'refused: branch "a|b" contains shell metacharacters: refused before anything ran',
      started_at: '2026-01-01T00:00:00.000Z',
      finished_at: '2026-01-01T00:00:01.260Z',
      duration_seconds: 1.3,
      mode: null,
      steps: [],
      artifacts_dir: null,
      artifacts: [],
    });
  });

  it('adds the type’s details beside the facts, never over them', () => {
    const m = jobManifest(facts({ mode: 'distcc', details: { mode: 'other', status: 'completed', steps: ['x'], distcc: { remote_compiles: 3 } } }));
    assert.equal(m.mode, 'distcc');
    assert.equal(m.status, 'failed');
    assert.deepEqual(m.steps, []);
    assert.deepEqual(m.distcc, { remote_compiles: 3 });
  });
});
