// The heartbeat branch: one parentless commit, force-pushed with a lease;
// `heartbeat squash` turns a branch with history (as the old scripts left it)
// into one commit, keeping a backup ref when asked.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeartbeatWriter, readHeartbeats } from '../../agent/store/heartbeat.js';
import { Store } from '../../agent/store/store.js';
import { cleanupAll, cloneWork, git, runCli, tmpDir } from '../helpers/git.js';

after(cleanupAll);

async function repo() {
  const base = await tmpDir('bc-hb-');
  const path = join(base, 'coord.git');
  const init = await runCli(['init', '--repo', path], { env: { BUILDCOORD_HOME: join(base, 'home') } });
  assert.equal(init.exitCode, 0, init.stderr);
  return { base, path };
}

const beat = (server: string, t: Date) => ({ server, timestamp: t.toISOString(), uptime_seconds: 1, healthy: true });

describe('heartbeat branch', () => {
  it('many heartbeats leave main untouched and the branch at one parentless commit', async () => {
    const { base, path } = await repo();
    const mainBefore = await git(path, 'rev-parse', 'main');
    const store = new Store({ remote: path, home: join(base, 'h1'), actor: 'build1' });
    const w = new HeartbeatWriter(store, 'build1');
    for (let i = 0; i < 20; i++) await w.write(beat('build1', new Date(Date.UTC(2026, 0, 1, 0, 0, i))));
    assert.equal(await git(path, 'rev-parse', 'main'), mainBefore);
    assert.equal(await git(path, 'rev-list', '--count', 'heartbeat/build1'), '1');
    assert.equal(await git(path, 'rev-list', '--parents', '-n', '1', 'heartbeat/build1'), await git(path, 'rev-parse', 'heartbeat/build1'));
    const seen = await readHeartbeats(store);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.doc!.timestamp, '2026-01-01T00:00:19.000Z');
    // A second writer for the same builder (e.g. after a restart) takes over the branch.
    const again = new HeartbeatWriter(new Store({ remote: path, home: join(base, 'h2'), actor: 'build1' }), 'build1');
    await again.write(beat('build1', new Date(Date.UTC(2026, 0, 1, 0, 1, 0))));
    assert.equal(await git(path, 'rev-list', '--count', 'heartbeat/build1'), '1');
    store.close();
  });

  it('squash turns a heartbeat branch with history into one commit, with a backup when asked', async () => {
    const { base, path } = await repo();
    // The old way: a commit per heartbeat on a branch.
    const work = await cloneWork(path);
    await git(work, 'checkout', '-q', '--orphan', 'heartbeat/build2');
    await git(work, 'rm', '-rq', '--cached', '.');
    await mkdir(join(work, 'build2'), { recursive: true });
    for (let i = 0; i < 5; i++) {
      await writeFile(join(work, 'build2/heartbeat.json'), JSON.stringify(beat('build2', new Date(Date.UTC(2026, 0, 1, 0, 0, i)))) + '\n');
      await git(work, 'add', 'build2/heartbeat.json');
      await git(work, 'commit', '-q', '-m', `heartbeat ${i}`);
    }
    await git(work, 'push', '-q', 'origin', 'HEAD:refs/heads/heartbeat/build2');
    const oldTip = await git(path, 'rev-parse', 'heartbeat/build2');
    const before = Number(await git(path, 'rev-list', '--count', 'heartbeat/build2'));
    assert.equal(before, 5);
    const mainBefore = await git(path, 'rev-parse', 'main');
    const oldTree = await git(path, 'rev-parse', 'heartbeat/build2^{tree}');
    const env = { BUILDCOORD_HOME: join(base, 'home') };
    const r = await runCli(['heartbeat', 'squash', '--builder', 'build2', '--backup', '--repo', path, '--json'], { env });
    assert.equal(r.exitCode, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { before: string; after: string; backupRef: string };
    assert.equal(out.before, oldTip);
    assert.equal(await git(path, 'rev-list', '--count', 'heartbeat/build2'), '1');
    assert.equal(await git(path, 'rev-parse', 'heartbeat/build2^{tree}'), oldTree, 'same content');
    assert.equal(await git(path, 'rev-parse', out.backupRef), oldTip, 'old history kept under the backup ref');
    assert.equal(await git(path, 'rev-parse', 'main'), mainBefore, 'main untouched');
    const again = await runCli(['heartbeat', 'squash', '--builder', 'build2', '--repo', path], { env });
    assert.equal(again.exitCode, 0);
    assert.match(again.stdout, /already a single commit/);
    const bad = await runCli(['heartbeat', 'squash', '--branch', 'main', '--repo', path], { env });
    assert.equal(bad.exitCode, 2);
    const missing = await runCli(['heartbeat', 'squash', '--builder', 'nobody', '--repo', path], { env });
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /no branch heartbeat\/nobody/);
  });
});
