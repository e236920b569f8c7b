// The fleet commands end to end as child processes: profiles, status,
// control pause/resume (honoured by a real agent), cancel/retry/log,
// history, and the agent's answers to status/ping requests.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../agent/store/store.js';
import { HeartbeatWriter } from '../../agent/store/heartbeat.js';
import { readJobs } from '../../agent/store/ops.js';
import type { Job, MessagesFile } from '../../agent/model/types.js';
import { cleanupAll, cliPath, git, makeBareRepo, onCleanup, runCli, seedRepo, tmpDir } from '../helpers/git.js';

after(cleanupAll);

async function setup() {
  const base = await tmpDir('bc-fleet-');
  const repo = join(base, 'coord.git');
  const home = join(base, 'home');
  const init = await runCli(['init', '--repo', repo], { env: { BUILDCOORD_HOME: home } });
  assert.equal(init.exitCode, 0, init.stderr);
  const cli = (args: string[]) => runCli([...args, '--repo', repo], { env: { BUILDCOORD_HOME: home } });
  return { base, repo, home, cli };
}

function startAgent(repo: string, builder: string, home: string, extra: string[] = []): { proc: ChildProcess; lines: () => Array<Record<string, unknown>> } {
  // Its own config file, so a real /etc/buildcoord/agent.json never leaks in.
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'no-config.json'), JSON.stringify({ builder }));
  const proc = spawn(process.execPath, [cliPath(), 'agent', '--repo', repo, '--builder', builder, '--poll', '200ms', '--heartbeat', '400ms', '--lease', '3s', '--grace', '2s', ...extra], {
    env: { ...process.env, BUILDCOORD_HOME: home, NO_COLOR: '1', BUILDCOORD_CONFIG: join(home, 'no-config.json'), BUILDCOORD_ARTIFACTS_DIR: join(home, 'artifacts') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('close', r));
    }
  });
  return {
    proc,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(proc: ChildProcess): Promise<number | null> {
  proc.kill('SIGTERM');
  return new Promise((r) => proc.once('close', (code) => r(code)));
}

describe('fleet commands', () => {
  it('profile list/show, and job add --profile queues the set with its dependencies in one commit', async () => {
    const { repo, cli } = await setup();
    const list = await cli(['profile', 'list', '--json']);
    assert.equal(list.exitCode, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as Array<{ name: string }>).map((p) => p.name), ['release']);
    const show = await cli(['profile', 'show', 'release']);
    assert.match(show.stdout, /maven\s+maven/);
    const before = await git(repo, 'rev-list', '--count', 'main');
    const add = await cli(['job', 'add', '--profile', 'release', '--branch', 'release/2.1', '--commit', '3f9a1c2', '--json']);
    assert.equal(add.exitCode, 0, add.stderr);
    const ids = (JSON.parse(add.stdout) as { ids: string[] }).ids;
    assert.equal(ids.length, 3);
    assert.equal(Number(await git(repo, 'rev-list', '--count', 'main')), Number(before) + 1, 'one commit for the whole profile');
    const jobs = JSON.parse((await cli(['job', 'list', '--json'])).stdout) as Job[];
    const byId = new Map(jobs.map((j) => [j.id, j]));
    assert.deepEqual([byId.get(ids[0]!)!.type, byId.get(ids[1]!)!.type, byId.get(ids[2]!)!.type], ['maven', 'deb', 'distcc-smoketest']);
    assert.deepEqual(byId.get(ids[1]!)!.dependencies, [ids[0]]);
    assert.deepEqual(byId.get(ids[2]!)!.dependencies, [ids[1]]);
    assert.ok(jobs.every((j) => j.branch === 'release/2.1' && j.commit === '3f9a1c2'));
    for (const bad of [
      ['job', 'add', '--profile', 'nope'],
      ['job', 'add', '--profile', 'release', '--type', 'make'],
      ['job', 'add', '--profile', '../x'],
      ['profile', 'show', 'nope'],
    ]) {
      const r = await cli(bad);
      assert.equal(r.exitCode, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
  });

  it('cancel, retry, history; cancel of a finished job is refused', async () => {
    const { cli } = await setup();
    const id = (await cli(['job', 'add', '--type', 'make'])).stdout.trim();
    const c = await cli(['job', 'cancel', id]);
    assert.equal(c.exitCode, 0, c.stderr);
    assert.match(c.stdout, /cancelled; it will not run/);
    const again = await cli(['job', 'cancel', id]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /already cancelled/);
    const h = JSON.parse((await cli(['history', '--json'])).stdout) as Array<{ id: string; status: string }>;
    assert.deepEqual(h.map((x) => [x.id, x.status]), [[id, 'cancelled']]);
    const r = await cli(['job', 'retry', id, '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Job).status, 'queued');
    const log = await cli(['job', 'log', id]);
    assert.equal(log.exitCode, 1);
    assert.match(log.stderr, /no pushed log yet/);
    const missing = await cli(['job', 'cancel', 'job_nope']);
    assert.equal(missing.exitCode, 2);
  });

  it('status shows builders from status files and heartbeats: healthy, stale and unknown', async () => {
    const { repo, home, cli } = await setup();
    const store = new Store({ remote: repo, home: join(home, 'hb'), actor: 'build1' });
    const now = new Date();
    await new HeartbeatWriter(store, 'build1').write({ server: 'build1', timestamp: now.toISOString(), uptime_seconds: 5, healthy: true, agent_version: '9.9.9' });
    const old = new Date(now.getTime() - 3_600_000);
    await new HeartbeatWriter(store, 'build2').write({ server: 'build2', timestamp: old.toISOString(), uptime_seconds: 5, healthy: true });
    await new HeartbeatWriter(store, 'build3').write({ server: 'build3', timestamp: now.toISOString(), uptime_seconds: 5, healthy: false, degraded_reasons: ['disk full'] });
    store.close();
    await cli(['job', 'add', '--type', 'make']);
    const s = await cli(['status', '--json']);
    assert.equal(s.exitCode, 0, s.stderr);
    const out = JSON.parse(s.stdout) as { builders: Array<{ builder: string; health: string; agent_version: string | null }>; queue: { queued: number } };
    const health = Object.fromEntries(out.builders.map((b) => [b.builder, b.health]));
    assert.deepEqual(health, { build1: 'healthy', build2: 'stale', build3: 'degraded' });
    assert.equal(out.builders.find((b) => b.builder === 'build1')!.agent_version, '9.9.9');
    assert.equal(out.queue.queued, 1);
    const table = await cli(['status']);
    assert.match(table.stdout, /build2\s+stale/);
    assert.match(table.stdout, /build3\s+degraded \(disk full\)/);
    assert.match(table.stdout, /queue: 1 queued/);
  });

  it('a paused builder claims nothing; resumed, it claims; the pause is recorded with who and when', async () => {
    const { repo, home, cli, base } = await setup();
    const src = await makeBareRepo({ parent: base, name: 'src.git' });
    await seedRepo(src.url, { Makefile: 'all:\n\t@echo built\n' });
    // --builder names the builder to pause here (the spelling); --target is the same.
    const p = await cli(['control', 'pause', '--builder', 'build1']);
    assert.equal(p.exitCode, 0, p.stderr);
    assert.equal(p.stdout.trim(), 'paused build1');
    const id = (await cli(['job', 'add', '--type', 'make', '--source', src.url])).stdout.trim();
    // A claim by hand follows the same rule as the agents.
    const byHand = await cli(['job', 'claim', '--builder', 'build1']);
    assert.equal(byHand.exitCode, 1);
    assert.match(byHand.stderr, /^buildcoord: build1 is paused \(by [^)]+\): it claims nothing until `buildcoord control resume`$/);
    const a = startAgent(repo, 'build1', join(base, 'agent-home'));
    await until('the agent to report paused', async () => {
      const st = await git(repo, 'show', 'main:build1/status.json');
      return (JSON.parse(st) as { status: string }).status === 'paused';
    });
    await new Promise((r) => setTimeout(r, 800));
    assert.equal((await readJobs(new Store({ remote: repo, home: join(home, 'r'), actor: 'r' }))).jobs[0]!.status, 'queued', 'nothing claimed while paused');
    const config = JSON.parse(await git(repo, 'show', 'main:shared/build_config.json')) as { control: { paused?: boolean; builders: Record<string, { paused: boolean; paused_by: string; paused_at: string }> } };
    assert.equal(config.control.builders.build1!.paused, true);
    assert.ok(config.control.builders.build1!.paused_by);
    assert.notEqual(config.control.builders.build1!.paused_by, 'build1', 'recorded as paused by whoever ran the command, not by the paused builder');
    assert.equal(config.control.paused ?? false, false, 'only build1, not the fleet');
    assert.ok(Date.parse(config.control.builders.build1!.paused_at) > 0);
    assert.equal((await cli(['control', 'resume', '--target', 'build1'])).exitCode, 0);
    await until('the job to complete after resume', async () => {
      const jobs = await readJobs(new Store({ remote: repo, home: join(home, 'r2'), actor: 'r' }));
      return jobs.jobs.find((j) => j.id === id)?.status === 'completed';
    });
    // The summary rode in the claim and completion commits.
    const dash = JSON.parse(await git(repo, 'show', 'main:shared/health_dashboard.json')) as { builders: Record<string, { state: string }>; queue: { completed: number } };
    assert.equal(dash.queue.completed, 1);
    assert.equal(dash.builders.build1!.state, 'success');
    const touched = (await git(repo, 'log', '--format=%H %(trailers:key=Coord-Op,valueonly,separator=)', 'main', '--', 'shared/health_dashboard.json')).split('\n').filter(Boolean);
    assert.ok(touched.some((l) => l.endsWith(' complete')), `the completion commit carries it:\n${touched.join('\n')}`);
    // A commit of its own only for a real change of a builder's health (e.g. a heartbeat that was late on a busy machine).
    type Health = { builders: Record<string, { health: string }> };
    const healthOf = async (rev: string) => Object.fromEntries(Object.entries((JSON.parse(await git(repo, 'show', `${rev}:shared/health_dashboard.json`)) as Health).builders).map(([n, b]) => [n, b.health]));
    for (const l of touched.filter((x) => x.endsWith(' dashboard'))) {
      const sha = l.split(' ')[0]!;
      assert.notDeepEqual(await healthOf(sha), await healthOf(`${sha}^`), `dashboard-only commit ${sha} changed some builder's health`);
    }
    assert.equal(await stop(a.proc), 0);
  });

  it('the agent logs each message once, marks it read for itself only, and answers status and ping', async () => {
    const { repo, cli, base } = await setup();
    assert.equal((await cli(['msg', 'send', '--to', 'build1', '--type', 'request', '--subject', 'ping'])).exitCode, 0);
    assert.equal((await cli(['msg', 'send', '--to', 'build1', '--type', 'request', '--subject', 'status'])).exitCode, 0);
    assert.equal((await cli(['msg', 'send', '--to', 'all', '--type', 'info', '--subject', 'hello all'])).exitCode, 0);
    const a = startAgent(repo, 'build1', join(base, 'agent-home'));
    const file = await until('two replies', async () => {
      const m = JSON.parse(await git(repo, 'show', 'main:coordination/messages.json')) as MessagesFile;
      return m.messages.filter((x) => x.from === 'build1').length >= 2 ? m : null;
    });
    const replies = file.messages.filter((x) => x.from === 'build1');
    assert.ok(replies.some((r) => r.body.startsWith('pong from build1')));
    assert.ok(replies.some((r) => /build1: idle; healthy true/.test(r.body)));
    const hello = file.messages.find((x) => x.subject === 'hello all')!;
    assert.deepEqual(hello.read_by, ['build1']);
    assert.equal(hello.read, false, 'a message to all stays unread for the others');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await stop(a.proc), 0);
    const logged = a.lines().filter((l) => l.msg === 'message');
    assert.equal(logged.length, 3, 'each message logged once');
  });

  it('a burst of requests larger than one commit’s replies is answered in full, none marked read unanswered', async () => {
    const { repo, cli, base } = await setup();
    for (let i = 0; i < 11; i++) {
      const r = await cli(['msg', 'send', '--to', 'build1', '--type', 'request', '--subject', i === 10 ? 'status' : 'ping', '--body', `request ${i}`]);
      assert.equal(r.exitCode, 0, r.stderr);
    }
    const a = startAgent(repo, 'build1', join(base, 'agent-home'));
    const file = await until('eleven replies', async () => {
      const m = JSON.parse(await git(repo, 'show', 'main:coordination/messages.json')) as MessagesFile;
      return m.messages.filter((x) => x.from === 'build1').length >= 11 ? m : null;
    });
    const requests = file.messages.filter((x) => x.type === 'request');
    const answered = new Set(file.messages.filter((x) => x.from === 'build1').map((x) => x.in_reply_to));
    assert.equal(requests.length, 11);
    for (const q of requests) {
      assert.ok(answered.has(q.id), `${q.id} (${q.body}) answered`);
      assert.deepEqual(q.read_by, ['build1']);
    }
    assert.equal(await stop(a.proc), 0);
  });
});
