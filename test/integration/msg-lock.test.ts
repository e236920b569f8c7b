// Messages and locks end to end: real temporary remotes, real child processes
// (the CLI, and fixtures racing each other), nothing mocked.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MSG_ID_RE } from '../../agent/model/input.js';
import { archivePath, monthOf } from '../../agent/model/messages.js';
import type { LocksFile, Message, MessagesFile } from '../../agent/model/types.js';
import { validateWith } from '../../agent/model/validate.js';
import { initLayout } from '../../agent/store/layout.js';
import { readLocks } from '../../agent/store/ops-locks.js';
import { readMessage, readMessages, sendMessage } from '../../agent/store/ops-messages.js';
import { Store } from '../../agent/store/store.js';
import { runCli as runCliInProcess } from '../../agent/cli/app.js';
import { cleanupAll, git, makeBareRepo, onCleanup, repoRoot, runCli, tmpDir, type CliResult, jsonLines, runNode } from '../helpers/git.js';

after(cleanupAll);

const fixture = (name: string) => join(repoRoot(), 'dist', 'test', 'fixtures', `${name}.js`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freshRemote() {
  const repo = await makeBareRepo();
  const store = new Store({ remote: repo.url, home: await tmpDir('ml-home-'), actor: 'tester' });
  await initLayout(store, ['build1', 'build2']);
  onCleanup(() => store.close());
  // One home for every CLI call of a test: the clone is made once, and calls
  // on one host share it as they would in real life (under the local lock).
  const home = await tmpDir('ml-cli-home-');
  const cli = (builder: string, ...args: string[]): Promise<CliResult> => runCli([...args, '--repo', repo.url, '--builder', builder], { env: { BUILDCOORD_HOME: home } });
  // The same parser and commands without starting node: for the variants, so
  // the child processes (about half a second of CPU each) stay few.
  const inproc = async (builder: string, ...args: string[]): Promise<CliResult> => {
    let stdout = '';
    let stderr = '';
    // runCli clears and reads process.exitCode; keep a failure the test runner recorded meanwhile.
    const saved = process.exitCode;
    const exitCode = await runCliInProcess([...args, '--repo', repo.url, '--builder', builder, '--home', home], {
      out: (t) => (stdout += t),
      err: (t) => (stderr += t),
      env: {},
      clock: () => new Date(),
    });
    if (saved !== undefined) process.exitCode = saved;
    // Trimmed like execa trims a child's output.
    return { exitCode, stdout: stdout.replace(/\n$/, ''), stderr: stderr.replace(/\n$/, '') };
  };
  const sha = () => git(repo.dir, 'rev-parse', 'refs/heads/main');
  return { repo, store, cli, inproc, sha };
}

function ok(r: CliResult, what: string): string {
  assert.equal(r.exitCode, 0, `${what}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

function json<T>(r: CliResult, what: string): T {
  return JSON.parse(ok(r, what)) as T;
}

/** Exit 1 with one line on stderr matching re. */
function refused(r: CliResult, re: RegExp, what: string): void {
  assert.equal(r.exitCode, 1, `${what}: expected exit 1, got ${r.exitCode}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, re, what);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
}


// The groups run at once: most of their time is spent waiting on git and child processes.
describe('messages and locks', { concurrency: true }, () => {
  describe('races between real processes', () => {
    it('8 processes send 5 messages each at the same instant: all 40 land, none lost or duplicated', async () => {
      const { repo, store, sha } = await freshRemote();
      const procs = 8;
      const each = 5;
      const startAt = Date.now() + 1000;
      const runs = await Promise.all(
        Array.from({ length: procs }, async (_, i) => runNode([fixture('msg-sender'), repo.url, await tmpDir('ml-home-'), `s${i + 1}`, String(each), '--start-at', String(startAt)])),
      );
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const sent = runs.flatMap((r) => jsonLines(r.stdout)).filter((l) => l.event === 'sent');
      assert.equal(sent.length, procs * each);
      const ids = sent.map((l) => l.id as string);
      assert.equal(new Set(ids).size, ids.length, 'distinct ids');
      const final = await readMessages(store);
      assert.deepEqual(final.messages.map((m) => m.id).sort(), [...ids].sort(), 'exactly the reported messages, once each');
      const subjects = final.messages.map((m) => m.subject).sort();
      const expected = Array.from({ length: procs }, (_, p) => Array.from({ length: each }, (_, i) => `s${p + 1} #${i}`)).flat().sort();
      assert.deepEqual(subjects, expected);
      // init + one commit per message: a lost race re-ran on fresh state, it never merged.
      assert.equal(Number(await git(repo.dir, 'rev-list', '--count', await sha())), 1 + procs * each);
      assert.equal(await git(repo.dir, 'rev-list', '--merges', '--count', 'main'), '0');
      store.close();
    });

    it('4 processes race for one lock: one holder at a time, tokens strictly increasing in acquisition order', async () => {
      const { repo, store } = await freshRemote();
      const procs = 4;
      const rounds = 4;
      const startAt = Date.now() + 1000;
      const runs = await Promise.all(
        Array.from({ length: procs }, async (_, i) =>
          runNode([fixture('lock-racer'), repo.url, await tmpDir('ml-home-'), `r${i + 1}`, String(rounds), '--hold', '50', '--start-at', String(startAt)]),
        ),
      );
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const held = runs
        .flatMap((r) => jsonLines(r.stdout))
        .filter((l) => l.event === 'held')
        .map((l) => ({ actor: l.actor as string, token: l.token as number, acquired_at: l.acquired_at as number, released_at: l.released_at as number }))
        .sort((a, b) => a.acquired_at - b.acquired_at);
      assert.equal(held.length, procs * rounds);
      for (let i = 1; i < held.length; i++) {
        const prev = held[i - 1]!;
        const cur = held[i]!;
        assert.ok(cur.acquired_at > prev.released_at, `overlap: ${JSON.stringify(prev)} and ${JSON.stringify(cur)}`);
        assert.ok(cur.token > prev.token, `tokens out of order: ${JSON.stringify(prev)} then ${JSON.stringify(cur)}`);
      }
      assert.equal(new Set(held.map((h) => h.token)).size, held.length, 'all tokens distinct');
      const locks: LocksFile = await readLocks(store);
      assert.deepEqual(locks.locks, {}, 'every holding was released');
      assert.equal(locks.next_token, 1 + procs * rounds, 'one token per holding, none reused');
      assert.ok(repo.dir);
      store.close();
    });
  });


  describe('msg commands end to end', () => {
    it('send, list, show, read, ack, with --json; read and ack are per reader and idempotent', async () => {
      const { cli, inproc, sha } = await freshRemote();
      const bodyFile = join(await tmpDir('ml-body-'), 'body.txt');
      await writeFile(bodyFile, 'please drain\nbefore Friday\n');
      const [first, second] = await Promise.all([
        cli('alice', 'msg', 'send', '--to', 'build1', '--type', 'request', '--subject', 'drain build1', '--body-file', bodyFile, '--ack-required', '--json'),
        cli('build2', 'msg', 'send', '--to', 'all', '--type', 'warning', '--subject', 'disk almost full', '--body', 'on /var'),
      ]);
      const direct = json<{ id: string }>(first, 'send --json').id;
      const toAll = ok(second, 'send').trim();
      assert.match(direct, MSG_ID_RE);
      assert.match(toAll, MSG_ID_RE);
      const reply = json<{ id: string }>(await inproc('build1', 'msg', 'send', '--to', 'alice', '--subject', 'will do', '--reply-to', direct, '--json'), 'send --reply-to').id;

      const [table, allJson, showJson, ackNotAsked] = await Promise.all([
        cli('build1', 'msg', 'list'),
        cli('build1', 'msg', 'list', '--all', '--json'),
        cli('build1', 'msg', 'show', direct, '--json'),
        cli('build1', 'msg', 'ack', toAll),
      ]);
      const rows = ok(table, 'list').trimEnd().split('\n');
      assert.match(rows[0]!, /^ID\s+FROM\s+TO\s+TYPE\s+SUBJECT\s+AGE\s+READ$/);
      assert.equal(rows.length, 3, 'build1 sees its own message and the one to all, not the reply to alice');
      assert.match(rows.find((r) => r.startsWith(direct))!, /alice\s+build1\s+request\s+drain build1\s+\S+\s+no, ack needed$/);
      assert.match(rows.find((r) => r.startsWith(toAll))!, /build2\s+all\s+warning\s+disk almost full\s+\S+\s+no$/);
      const all = json<Message[]>(allJson, 'list --all --json');
      assert.deepEqual(all.map((m) => m.id).sort(), [direct, toAll, reply].sort());
      assert.equal(all.find((m) => m.id === reply)!.in_reply_to, direct);
      const shown = json<Message>(showJson, 'show --json');
      assert.deepEqual([shown.id, shown.from, shown.to, shown.type, shown.ack_required, shown.body], [direct, 'alice', 'build1', 'request', true, 'please drain\nbefore Friday\n']);
      refused(ackNotAsked, /^buildcoord: message msg_\S+ does not ask for an acknowledgement/, 'ack of a message that does not ask for one');

      const [showText, unread, forAlice, newestFirst] = await Promise.all([
        inproc('build1', 'msg', 'show', direct),
        inproc('build1', 'msg', 'list', '--unread', '--json'),
        inproc('build1', 'msg', 'list', '--for', 'alice', '--json'),
        inproc('alice', 'msg', 'list', '--all', '--json'),
      ]);
      assert.match(ok(showText, 'show'), /^id\s+msg_.*\nfrom\s+alice\n[\s\S]*\n\nplease drain\nbefore Friday$/);
      assert.deepEqual(json<Message[]>(unread, 'list --unread').map((m) => m.id).sort(), [direct, toAll].sort());
      assert.deepEqual(json<Message[]>(forAlice, 'list --for alice').map((m) => m.id).sort(), [reply, toAll].sort());
      const times = json<Message[]>(newestFirst, 'list --all').map((m) => Date.parse(m.timestamp));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');

      // Reading a message to all marks it read for build1 only.
      assert.match(ok(await cli('build1', 'msg', 'read', toAll), 'read'), /marked read by build1$/);
      const before = await sha();
      const [again, build2Unread] = await Promise.all([cli('build1', 'msg', 'read', toAll, '--json'), inproc('build2', 'msg', 'list', '--unread', '--json')]);
      const againOut = json<{ changed: boolean; commit: string | null; message: Message }>(again, 'read again');
      assert.deepEqual([againOut.changed, againOut.commit, againOut.message.read, againOut.message.read_by], [false, null, false, ['build1']]);
      assert.equal(await sha(), before, 'reading twice makes no commit');
      assert.deepEqual(json<Message[]>(build2Unread, 'build2 unread').map((m) => m.id), [toAll], 'still unread for build2');

      const acked = json<{ changed: boolean; message: Message }>(await cli('build1', 'msg', 'ack', direct, '--json'), 'ack');
      assert.deepEqual([acked.changed, acked.message.read, acked.message.read_by, acked.message.acked_by], [true, true, ['build1'], ['build1']]);
      const afterAck = await sha();
      assert.match(ok(await inproc('build1', 'msg', 'ack', direct), 'ack again'), /was already acknowledged by build1$/);
      refused(await inproc('build2', 'msg', 'ack', direct), /addressed to build1, not build2/, 'ack by somebody else');
      assert.equal(await sha(), afterAck, 'acking twice (or refused) makes no commit');
    });

    it('archive moves settled old messages to coordination/archive/YYYY-MM.json, appending, one commit each run', async () => {
      const { repo, store, cli, inproc, sha } = await freshRemote();
      const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
      const sendOld = async (to: string, subject: string) => (await sendMessage(store, { to, type: 'info', subject, body: '' }, { clock: () => tenDaysAgo })).result;
      const readOld = await sendOld('build1', 'old, read');
      const unreadOld = await sendOld('build1', 'old, unread');
      const laterRead = await sendOld('build2', 'old, read later');
      const fresh = (await sendMessage(store, { to: 'build1', type: 'info', subject: 'fresh', body: '' })).result;
      for (const m of [readOld, fresh]) await readMessage(store, { id: m.id, reader: 'build1' });
      await readMessage(store, { id: unreadOld.id, reader: 'alice' }); // somebody else reading does not settle it
      // To all, read by build1 only: build2 (also on main) has not seen it, so it stays in messages.json.
      const allOld = await sendOld('all', 'old, to all');
      await readMessage(store, { id: allOld.id, reader: 'build1' });

      const first = json<{ archived: number; ids: string[]; files: Record<string, number> }>(await cli('alice', 'msg', 'archive', '--older-than', '7d', '--json'), 'archive');
      const path = archivePath(monthOf(readOld));
      assert.deepEqual([first.archived, first.ids, first.files], [1, [readOld.id], { [path]: 1 }]);

      await readMessage(store, { id: laterRead.id, reader: 'build2' });
      assert.equal(ok(await inproc('alice', 'msg', 'archive', '--older-than', '7d'), 'archive again'), `archived 1 message to ${path} (1)`);
      const last = await sha();
      // One commit that changed both files.
      const shown = (await git(repo.dir, 'show', '--name-only', '--format=%s', last)).split('\n').filter(Boolean);
      assert.match(shown[0]!, /^archive 1 message sent before \S+Z$/);
      assert.deepEqual(shown.slice(1).sort(), [path, 'coordination/messages.json'].sort());

      const view = await store.read([path, 'coordination/messages.json']);
      const archived = view.get<MessagesFile>(path)!;
      assert.deepEqual(archived.messages.map((m) => m.id), [readOld.id, laterRead.id], 'appended, each once');
      assert.equal(archived.$schema, '../../schemas/messages.schema.json');
      assert.deepEqual(validateWith('messages.schema.json', archived, path), [], 'the archive validates against messages.schema.json');
      assert.deepEqual(view.get<MessagesFile>('coordination/messages.json')!.messages.map((m) => m.id).sort(), [unreadOld.id, fresh.id, allOld.id].sort());

      assert.match(ok(await inproc('alice', 'msg', 'archive'), 'archive with nothing to do'), /^nothing to archive/);
      assert.equal(await sha(), last, 'nothing to archive makes no commit');
      // Once build2 has read it too, the message to all is settled.
      await readMessage(store, { id: allOld.id, reader: 'build2' });
      assert.equal(ok(await inproc('alice', 'msg', 'archive', '--older-than', '7d'), 'archive the message to all'), `archived 1 message to ${path} (1)`);
    });
  });

  describe('lock commands end to end', () => {
    it('acquire, list, renew, release with --json; a released lock is free at once', async () => {
      const { cli, inproc } = await freshRemote();
      const got = json<{ name: string; token: number; expires_at: string }>(await cli('build1', 'lock', 'acquire', 'deploy', '--ttl', '10m', '--note', 'release 2.1', '--json'), 'acquire');
      assert.deepEqual([got.name, got.token], ['deploy', 1]);
      const [other, table, mine, listJson, wrongToken] = await Promise.all([
        cli('build2', 'lock', 'acquire', 'deploy'),
        cli('build1', 'lock', 'list'),
        inproc('build1', 'lock', 'acquire', 'deploy'),
        inproc('build1', 'lock', 'list', '--json'),
        inproc('build1', 'lock', 'renew', 'deploy', '--token', '2'),
      ]);
      refused(other, new RegExp(`^buildcoord: lock deploy held by build1 until ${got.expires_at.replace(/\./g, '\\.')} \\(token 1\\)$`), 'held by somebody else');
      refused(mine, /already held by build1 .*use `lock renew deploy --token 1`/, 'held by me');
      const rows = ok(table, 'list').trimEnd().split('\n');
      assert.match(rows[0]!, /^NAME\s+HOLDER\s+TOKEN\s+ACQUIRED\s+EXPIRES\s+NOTE$/);
      assert.match(rows[1]!, /^deploy\s+build1\s+1\s+\S+Z \(\S+ ago\)\s+\S+Z \(in \S+\)\s+release 2\.1$/);
      const listed = json<Array<{ name: string; locked_by: string; token: number; expired: boolean; note: string }>>(listJson, 'list --json');
      assert.deepEqual(listed.map((l) => [l.name, l.locked_by, l.token, l.expired, l.note]), [['deploy', 'build1', 1, false, 'release 2.1']]);
      refused(wrongToken, /token 2 is stale: lock deploy is held by build1 with token 1/, 'renew with a wrong token');

      const renewed = json<{ token: number; expires_at: string }>(await cli('build1', 'lock', 'renew', 'deploy', '--token', '1', '--ttl', '1h', '--json'), 'renew');
      assert.equal(renewed.token, 1);
      assert.ok(Date.parse(renewed.expires_at) > Date.parse(got.expires_at));
      assert.equal(ok(await cli('build1', 'lock', 'release', 'deploy', '--token', '1'), 'release'), 'deploy released (token 1)');
      assert.equal(ok(await cli('build2', 'lock', 'acquire', 'deploy'), 'acquire after release'), '2', 'free at once, with a new token');
      const released = json<{ released: boolean }>(await cli('build2', 'lock', 'release', 'deploy', '--token', '2', '--json'), 'release --json');
      assert.equal(released.released, true);
      refused(await inproc('build2', 'lock', 'release', 'deploy', '--token', '2'), /lock deploy is not held: token 2 is no longer valid/, 'release twice');
    });

    it('an expired lock (ttl 500ms) is taken over with a larger token; the old holder\'s renew and release are refused', async () => {
      const { cli, inproc } = await freshRemote();
      const old = json<{ token: number }>(await inproc('build1', 'lock', 'acquire', 'short', '--ttl', '500ms', '--json'), 'acquire');
      await sleep(600);
      const listed = json<Array<{ expired: boolean }>>(await inproc('build2', 'lock', 'list', '--json'), 'list');
      assert.equal(listed[0]!.expired, true);
      const taken = json<{ token: number }>(await cli('build2', 'lock', 'acquire', 'short', '--json'), 'take over');
      assert.ok(taken.token > old.token);
      const [renew, release] = await Promise.all([
        cli('build1', 'lock', 'renew', 'short', '--token', String(old.token)),
        inproc('build1', 'lock', 'release', 'short', '--token', String(old.token)),
      ]);
      refused(renew, new RegExp(`token ${old.token} is stale: lock short is held by build2 with token ${taken.token}`), 'old renew');
      refused(release, new RegExp(`token ${old.token} is stale`), 'old release');
    });

    it('--wait polls until the holder\'s lease runs out; a wait that ends first exits 1', async () => {
      const { cli, inproc } = await freshRemote();
      ok(await inproc('build1', 'lock', 'acquire', 'w', '--ttl', '1s'), 'acquire');
      // Exit 0 here means it was taken within the wait, once the lease had run out.
      const waited = json<{ token: number; expires_at: string }>(await cli('build2', 'lock', 'acquire', 'w', '--wait', '60s', '--json'), 'acquire --wait');
      assert.equal(waited.token, 2);
      const gaveUp = await inproc('build3', 'lock', 'acquire', 'w', '--wait', '300ms');
      refused(gaveUp, /^buildcoord: lock w held by build2 until \S+ \(token 2\); gave up after waiting 0\.3 s$/, 'wait ran out');
    });
  });

  describe('malformed input: exit 2, one line naming the flag, nothing pushed', () => {
    function check(cases: Array<[string[], RegExp]>, results: CliResult[]): void {
      results.forEach((r, i) => {
        const [args, re] = cases[i]!;
        const what = args.join(' ').slice(0, 80);
        assert.equal(r.exitCode, 2, `${what}: exit ${r.exitCode}: ${r.stderr}`);
        assert.equal(r.stdout, '', `${what}: nothing on stdout`);
        const errLines = r.stderr.split('\n');
        assert.equal(errLines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
        assert.match(errLines[0]!, /^buildcoord: /);
        assert.match(errLines[0]!, re, what);
      });
    }

    it('as child processes', async () => {
      const { cli, sha } = await freshRemote();
      const before = await sha();
      const cases: Array<[string[], RegExp]> = [
        [['msg', 'send', '--to', 'build1', '--subject', 'two\nlines'], /--subject: must be a single line/],
        [['lock', 'acquire', 'x'.repeat(300)], /lock name "x{60}…": expected/],
        [['lock', 'acquire', '../x'], /lock name "\.\.\/x": expected/],
        [['msg', 'read', 'msg_../../etc'], /message id "msg_\.\.\/\.\.\/etc": expected a message id/],
        [['msg', 'send', '--to', 'a b', '--subject', 's'], /--to "a b": expected/],
        [['msg', 'send', '--to', 'all', '--type', 'urgent', '--subject', 's'], /--type "urgent": expected one of info, warning, error, request/],
        [['lock', 'acquire', 'deploy', '--ttl', 'forever'], /--ttl "forever": expected a duration/],
        [['lock', 'release', 'deploy', '--token', 'abc'], /--token "abc": expected the fencing token/],
        [['msg', 'archive', '--older-than', '7'], /--older-than "7": expected a duration/],
        [['msg', 'read', 'msg_20200101T000000Z_0000000000'], /no message msg_20200101T000000Z_0000000000 in coordination\/messages.json/],
        [['msg', 'send', '--to', 'all', '--subject', 's', '--body-file', '/nonexistent/body.txt'], /--body-file "\/nonexistent\/body.txt": cannot read it \(ENOENT\)/],
      ];
      check(cases, await Promise.all(cases.map(([args]) => cli('build1', ...args))));
      assert.equal(await sha(), before, 'nothing was pushed');
    });

    it('--help of every msg and lock command shows examples', async () => {
      const { inproc } = await freshRemote();
      for (const cmd of [['msg'], ['msg', 'send'], ['msg', 'list'], ['msg', 'show'], ['msg', 'read'], ['msg', 'ack'], ['msg', 'archive'], ['lock'], ['lock', 'acquire'], ['lock', 'renew'], ['lock', 'release'], ['lock', 'list']]) {
        const r = await inproc('build1', ...cmd, '--help');
        assert.equal(r.exitCode, 0, `${cmd.join(' ')} --help: ${r.stderr}`);
        assert.match(r.stdout, /Examples:\n  buildcoord /, `${cmd.join(' ')} --help`);
      }
    });

    it('in process: more of them', async () => {
      const { inproc, sha } = await freshRemote();
      const before = await sha();
      const cases: Array<[string[], RegExp]> = [
        [['msg', 'send', '--to', 'all', '--subject', 'x'.repeat(201)], /--subject: 201 characters is too long/],
        [['msg', 'send', '--to', 'all', '--subject', 'tab\there'], /--subject: must not contain control characters/],
        [['msg', 'send', '--to', 'all', '--subject', '  '], /--subject: must not be empty/],
        [['msg', 'send', '--to', 'all'], /--subject is required/],
        [['msg', 'send', '--subject', 's'], /--to is required/],
        [['msg', 'send', '--to', 'all', '--subject', 's', '--body', 'b', '--body-file', 'f'], /--body and --body-file/],
        [['msg', 'send', '--to', 'all', '--subject', 's', '--reply-to', 'job_1'], /--reply-to "job_1"/],
        [['msg', 'send', '--to', 'all', '--subject', 's', '--reply-to', 'msg_20200101T000000Z_0000000000'], /--reply-to msg_20200101T000000Z_0000000000: no such message/],
        [['msg', 'send', '--to', 'a;b', '--subject', 's'], /--to "a;b"/],
        [['msg', 'ack', 'msg_$(id)'], /message id "msg_\$\(id\)"/],
        [['msg', 'ack', 'msg_nope_nope_nope'], /no message msg_nope_nope_nope/],
        [['msg', 'show', 'job_1'], /message id "job_1"/],
        [['msg', 'show', 'msg_20200101T000000Z_0000000000'], /no message msg_20200101T000000Z_0000000000/],
        [['msg', 'list', '--for', 'x y'], /--for "x y"/],
        [['msg', 'archive', '--older-than', '0d'], /--older-than "0d": must be more than 0/],
        [['lock', 'acquire', '.hidden'], /lock name "\.hidden"/],
        [['lock', 'acquire', 'a/b'], /lock name "a\/b"/],
        [['lock', 'acquire', 'a;rm -rf ~'], /lock name "a;rm -rf ~"/],
        [['lock', 'acquire', 'deploy', '--wait', 'soon'], /--wait "soon": expected a duration/],
        [['lock', 'acquire', 'deploy', '--note', 'a\nb'], /--note: must be a single line/],
        [['lock', 'renew', 'deploy'], /--token is required/],
        [['lock', 'renew', 'deploy', '--token', '0'], /--token "0"/],
        [['lock', 'renew', 'deploy', '--token', '1', '--ttl', '0s'], /--ttl "0s": must be more than 0/],
        [['lock', 'release', 'deploy', '--token', '1.5'], /--token "1.5"/],
      ];
      const results: CliResult[] = [];
      for (const [args] of cases) results.push(await inproc('build1', ...args));
      check(cases, results);
      assert.equal(await sha(), before, 'nothing was pushed');
    });
  });
});
