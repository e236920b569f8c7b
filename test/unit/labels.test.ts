// Job labels are requirements on the builder, except build parameters
// ("maven.goals", "maven.profiles"), which the builder checks itself.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { blocker, emptyJobs, enqueue } from '../../agent/model/jobs.js';

const T0 = new Date('2026-01-01T00:00:00Z');

describe('labels', () => {
  it('a job label must match the builder; a maven.* parameter label never blocks', () => {
    const base = { type: 'maven', priority: 5, source: null, branch: 'main', commit: null, description: '', dependencies: [] };
    const { file, job } = enqueue(emptyJobs(), { ...base, labels: { arch: 'arm64', 'maven.goals': 'clean,package' } }, 'job_a', 'p', T0);
    assert.equal(blocker(file, job, { name: 'b1', labels: { arch: 'amd64' } }), 'labels');
    assert.equal(blocker(file, job, { name: 'b1', labels: { arch: 'arm64' } }), null);
    const only = enqueue(emptyJobs(), { ...base, labels: { 'maven.profiles': 'quick' } }, 'job_b', 'p', T0);
    assert.equal(blocker(only.file, only.job, { name: 'b1' }), null);
  });
});
