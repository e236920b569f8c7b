// The records a restarted agent uses to stop builds its predecessor left
// running, with real processes: what matters is what is gone afterwards.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GroupRecords, processStart, stopGroups } from '../../agent/daemon/orphans.js';
import { cleanupAll, isGone, onCleanup, sleep, tmpDir, waitGone } from '../helpers/git.js';

after(cleanupAll);

/** A detached shell (its own process group) that starts two sleeps and prints their PIDs. */
async function group(script: string): Promise<{ leader: number; children: number[] }> {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  const leader = child.pid!;
  onCleanup(() => {
    try {
      process.kill(-leader, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  while (out.split('\n').filter(Boolean).length < 2) await sleep(10);
  return { leader, children: out.split('\n').filter(Boolean).map(Number) };
}

describe('GroupRecords and stopGroups', () => {
  it('records a group with its start time, lists it, and stops every process in it', async () => {
    const records = new GroupRecords(join(await tmpDir('groups-'), 'groups'));
    const g = await group('sleep 300 & echo $!; sleep 300 & echo $!; wait');
    records.add('job_a', 2, g.leader);
    const listed = await records.list();
    assert.deepEqual(listed, [{ job: 'job_a', attempt: 2, groups: [{ pid: g.leader, start: (await processStart(g.leader))! }] }]);
    assert.equal(await stopGroups(listed[0]!.groups, 2000), 1);
    assert.deepEqual(await waitGone([g.leader, ...g.children]), []);
    await records.remove('job_a', 2);
    assert.deepEqual(await records.list(), []);
  });

  it('stops what a group left behind after its leader exited', async () => {
    const dir = join(await tmpDir('groups-'), 'groups');
    const records = new GroupRecords(dir);
    const g = await group('sleep 300 & echo $!; sleep 300 & echo $!; sleep 0.5; exit 0');
    records.add('job_b', 1, g.leader);
    const text = await readFile(join(dir, 'job_b-1.groups'), 'utf8');
    assert.match(text, new RegExp(`^${g.leader} \\d+\\n$`));
    assert.deepEqual(await waitGone([g.leader]), [], 'the leader exits by itself');
    assert.ok(g.children.every((p) => !isGone(p)), 'its children live on in its group');
    assert.equal(await stopGroups((await records.list())[0]!.groups, 2000), 1);
    assert.deepEqual(await waitGone(g.children), []);
  });

  it('leaves alone a PID now used by another process (another start time), and a group that is gone', async () => {
    const g = await group('sleep 300 & echo $!; sleep 300 & echo $!; wait');
    const other = String(Number(await processStart(g.leader)) - 1);
    assert.equal(await stopGroups([{ pid: g.leader, start: other }], 500), 0, 'the number was reused: not our group');
    assert.ok(!isGone(g.leader) && g.children.every((p) => !isGone(p)), 'untouched');
    assert.equal(await stopGroups([{ pid: 999_999_999, start: '1' }], 500), 0);
  });
});
