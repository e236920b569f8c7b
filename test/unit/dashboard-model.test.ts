// When the agents' periodic check rewrites shared/health_dashboard.json: only
// when a builder the file lists changed health. Queue counts and builders not
// listed yet wait for the next job commit.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { healthChanged, sameSummary } from '../../agent/model/dashboard.js';
import type { HealthDashboardFile } from '../../agent/model/types.js';

type Health = HealthDashboardFile['builders'][string]['health'];

function summary(health: Record<string, Health>, queued = 0): HealthDashboardFile {
  const builders: HealthDashboardFile['builders'] = {};
  for (const [name, h] of Object.entries(health)) builders[name] = { state: 'idle', health: h, current_job: null, last_build: null };
  return { version: 1, builders, queue: { queued, running: 0, completed: 0, failed: 0, cancelled: 0 } };
}

describe('healthChanged', () => {
  test('a listed builder going stale, coming back, degrading or disappearing is a change', () => {
    assert.equal(healthChanged(summary({ build1: 'healthy', build2: 'healthy' }), summary({ build1: 'stale', build2: 'healthy' })), true);
    assert.equal(healthChanged(summary({ build1: 'stale' }), summary({ build1: 'healthy' })), true);
    assert.equal(healthChanged(summary({ build1: 'healthy' }), summary({ build1: 'degraded' })), true);
    assert.equal(healthChanged(summary({ build1: 'healthy', old: 'offline' }), summary({ build1: 'healthy' })), true);
  });

  test('queue counts, a builder not listed yet, or no file at all are not', () => {
    assert.equal(healthChanged(summary({ build1: 'healthy' }, 0), summary({ build1: 'healthy' }, 7)), false);
    assert.equal(healthChanged(summary({}), summary({ build1: 'healthy' })), false);
    assert.equal(healthChanged(summary({ build1: 'unknown' }), summary({ build1: 'healthy' })), false, 'a builder starting up: its first heartbeat');
    assert.equal(healthChanged(undefined, summary({ build1: 'healthy' })), false);
    // ...while sameSummary, which the job commits use, sees the queue move.
    assert.equal(sameSummary(summary({ build1: 'healthy' }, 0), summary({ build1: 'healthy' }, 7)), false);
  });
});
