// Messages' pure core (agent/model/messages.ts) with a fake clock: every time
// is a plain Date handed in, nothing reads the real clock, nothing runs git.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PreconditionError, UsageError } from '../../agent/errors.js';
import { newId } from '../../agent/model/jobs.js';
import {
  acknowledge,
  ARCHIVE_SCHEMA_REF,
  archive,
  archivePath,
  archiveTargets,
  compareNewest,
  emptyArchive,
  emptyMessages,
  findMessage,
  hasRead,
  inbox,
  isSettled,
  markRead,
  parseBody,
  parseMessageId,
  parseMessageType,
  parseParty,
  parseSubject,
  send,
  type MessageInput,
} from '../../agent/model/messages.js';
import { MSG_ID_RE } from '../../agent/model/input.js';
import type { Message, MessagesFile } from '../../agent/model/types.js';
import { validateDoc, validateWith } from '../../agent/model/validate.js';

const T0 = new Date('2025-03-04T05:06:07.890Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const DAY = 86_400_000;

function input(over: Partial<MessageInput> = {}): MessageInput {
  return { to: 'build1', type: 'info', subject: 'hello', body: '', ...over };
}

function msg(id: string, over: Partial<Message> = {}): Message {
  return { id, from: 'alice', to: 'build1', type: 'info', subject: id, body: '', timestamp: T0.toISOString(), read: false, ...over };
}

function file(...messages: Message[]): MessagesFile {
  return { ...emptyMessages(), messages };
}

function rnd(n: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUIntBE(n, 0, 5);
  return b;
}

describe('message ids', () => {
  it('never collide in the same millisecond when the random bytes differ', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5000; i++) ids.add(newId('msg', T0, rnd(i * 7919 + 1)));
    assert.equal(ids.size, 5000);
    for (const id of ids) assert.match(id, MSG_ID_RE);
  });

  it('sort by time: an id drawn later sorts after one drawn earlier', () => {
    assert.ok(newId('msg', T0, rnd(0xffffffffff)) < newId('msg', at(1), rnd(0)));
  });

  it('two senders in the same millisecond both land: send refuses only a reused id', () => {
    let f = emptyMessages();
    f = send(f, input(), newId('msg', T0, rnd(1)), 'build1', T0).file;
    f = send(f, input(), newId('msg', T0, rnd(2)), 'build2', T0).file;
    assert.equal(f.messages.length, 2);
    assert.throws(() => send(f, input(), newId('msg', T0, rnd(1)), 'build3', T0), PreconditionError);
  });
});

describe('send', () => {
  it('adds the message, unread, timestamped by the given clock, and leaves its argument alone', () => {
    const before = emptyMessages();
    const r = send(before, input({ to: 'all', type: 'warning', subject: 'disk', body: 'b\nc', ack_required: true }), 'msg_1', 'build2', T0);
    assert.equal(before.messages.length, 0);
    assert.deepEqual(r.message, {
      id: 'msg_1',
      from: 'build2',
      to: 'all',
      type: 'warning',
      subject: 'disk',
      body: 'b\nc',
      timestamp: '2025-03-04T05:06:07.890Z',
      read: false,
      ack_required: true,
    });
    assert.deepEqual(validateDoc('coordination/messages.json', r.file), []);
  });

  it('a reply must name a live message', () => {
    const f = file(msg('msg_a'));
    assert.equal(send(f, input({ in_reply_to: 'msg_a' }), 'msg_b', 'build1', T0).message.in_reply_to, 'msg_a');
    assert.throws(() => send(f, input({ in_reply_to: 'msg_zz' }), 'msg_b', 'build1', T0), (e: unknown) => e instanceof UsageError && /^--reply-to msg_zz: no such message/.test((e as Error).message));
  });
});

describe('input checks name the flag', () => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['subject with a newline', () => parseSubject('a\nb'), /^--subject: must be a single line/],
    ['subject with a tab', () => parseSubject('a\tb'), /^--subject: must not contain control characters/],
    ['empty subject', () => parseSubject('  '), /^--subject: must not be empty/],
    ['long subject', () => parseSubject('x'.repeat(201)), /^--subject: 201 characters is too long \(at most 200\)/],
    ['recipient with a space', () => parseParty('a b', '--to'), /^--to "a b": expected a builder or person/],
    ['type urgent', () => parseMessageType('urgent'), /^--type "urgent": expected one of info, warning, error, request/],
    ['path in an id', () => parseMessageId('msg_../../etc'), /^message id "msg_\.\.\/\.\.\/etc": expected a message id/],
    ['job id as message id', () => parseMessageId('job_1', '--reply-to'), /^--reply-to "job_1"/],
    ['NUL in a body', () => parseBody('a\0b'), /^--body: must not contain NUL/],
  ];
  for (const [name, fn, re] of cases) {
    it(name, () => assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test((e as Error).message) && !(e as Error).message.includes('\n')));
  }
  it('accepts what the schema accepts', () => {
    assert.equal(parseParty('alice@example.org', '--to'), 'alice@example.org');
    assert.equal(parseParty('all', '--to'), 'all');
    assert.equal(parseSubject('x'.repeat(200)).length, 200);
    assert.equal(parseBody('two\nlines\n'), 'two\nlines\n');
  });
});

describe('reading is per reader', () => {
  it('a direct message: read becomes true only when the addressee reads it', () => {
    const f0 = file(msg('msg_d', { to: 'build1' }));
    const byAlice = markRead(f0, 'msg_d', 'alice');
    assert.equal(byAlice.changed, true);
    assert.equal(byAlice.message.read, false, 'somebody else reading it does not make it read');
    assert.deepEqual(byAlice.message.read_by, ['alice']);
    const byAddressee = markRead(byAlice.file, 'msg_d', 'build1');
    assert.equal(byAddressee.message.read, true);
    assert.deepEqual(byAddressee.message.read_by, ['alice', 'build1']);
    assert.equal(f0.messages[0]!.read_by, undefined, 'the argument is not edited');
  });

  it('a message to all stays unread for the others', () => {
    const f0 = file(msg('msg_all', { to: 'all' }));
    const r = markRead(f0, 'msg_all', 'build1');
    assert.equal(r.message.read, false, 'read is never set for "all"');
    assert.equal(hasRead(r.message, 'build1'), true);
    assert.equal(hasRead(r.message, 'build2'), false);
    assert.deepEqual(inbox(r.file, 'build2', { unread: true }).map((m) => m.id), ['msg_all']);
    assert.deepEqual(inbox(r.file, 'build1', { unread: true }), []);
  });

  it('reading twice changes nothing (the same file object: nothing to write)', () => {
    const once = markRead(file(msg('msg_x')), 'msg_x', 'build1');
    const twice = markRead(once.file, 'msg_x', 'build1');
    assert.equal(twice.changed, false);
    assert.equal(twice.file, once.file);
  });

  it('a hand-set read: true counts for the addressee; their first read still records read_by', () => {
    const m = msg('msg_h', { read: true });
    assert.equal(hasRead(m, 'build1'), true);
    assert.equal(hasRead(m, 'alice'), false);
    assert.deepEqual(markRead(file(m), 'msg_h', 'build1').message.read_by, ['build1']);
  });

  it('inbox: to the reader or to all, newest first; --all shows every message', () => {
    const f = file(
      msg('msg_old', { to: 'build1', timestamp: at(0).toISOString() }),
      msg('msg_other', { to: 'build2', timestamp: at(5).toISOString() }),
      msg('msg_new', { to: 'all', timestamp: at(10).toISOString() }),
      msg('msg_mid', { to: 'build1', timestamp: at(3).toISOString() }),
    );
    assert.deepEqual(inbox(f, 'build1').map((m) => m.id), ['msg_new', 'msg_mid', 'msg_old']);
    assert.deepEqual(inbox(f, 'build1', { all: true }).map((m) => m.id), ['msg_new', 'msg_other', 'msg_mid', 'msg_old']);
    assert.deepEqual(inbox(f, 'alice').map((m) => m.id), ['msg_new']);
    assert.ok(compareNewest(f.messages[2]!, f.messages[0]!) < 0);
  });

  it('findMessage: exact id, a unique prefix of 8+, else a usage error naming the file', () => {
    const f = file(msg('msg_20250304T050607Z_aaaaaaaaaa'), msg('msg_20250304T050607Z_bbbbbbbbbb'));
    assert.equal(findMessage(f, 'msg_20250304T050607Z_b').id, 'msg_20250304T050607Z_bbbbbbbbbb');
    assert.throws(() => findMessage(f, 'msg_20250304'), /ambiguous: 2 messages/);
    assert.throws(() => findMessage(f, 'msg_nope'), (e: unknown) => e instanceof UsageError && /no message msg_nope in coordination\/messages.json/.test((e as Error).message));
  });
});

describe('acknowledge', () => {
  it('is refused unless the message asks for it', () => {
    assert.throws(() => acknowledge(file(msg('msg_n')), 'msg_n', 'build1'), (e: unknown) => e instanceof PreconditionError && /does not ask for an acknowledgement/.test((e as Error).message));
  });

  it('is refused for somebody else\'s direct message', () => {
    assert.throws(() => acknowledge(file(msg('msg_a', { ack_required: true })), 'msg_a', 'build2'), /addressed to build1, not build2/);
  });

  it('records the ack and the read; a second ack changes nothing', () => {
    const r = acknowledge(file(msg('msg_a', { ack_required: true })), 'msg_a', 'build1');
    assert.deepEqual([r.changed, r.message.read, r.message.read_by, r.message.acked_by], [true, true, ['build1'], ['build1']]);
    const again = acknowledge(r.file, 'msg_a', 'build1');
    assert.equal(again.changed, false);
    assert.equal(again.file, r.file);
    const all = acknowledge(file(msg('msg_b', { to: 'all', ack_required: true })), 'msg_b', 'build2');
    assert.deepEqual([all.message.read, all.message.acked_by], [false, ['build2']]);
  });
});

describe('archive', () => {
  const now = new Date('2025-03-20T00:00:00.000Z');
  const cutoff = new Date(now.getTime() - 7 * DAY);
  const old = (day: string) => `2025-${day}T12:00:00.000Z`;

  const messages = file(
    msg('msg_feb_read', { timestamp: old('02-27'), read: true, read_by: ['build1'] }),
    msg('msg_mar_read', { timestamp: old('03-01'), read: true, read_by: ['build1'] }),
    msg('msg_unread', { timestamp: old('02-01') }),
    msg('msg_read_by_other', { timestamp: old('02-01'), read_by: ['alice'] }),
    msg('msg_unacked', { timestamp: old('02-01'), read: true, read_by: ['build1'], ack_required: true }),
    msg('msg_acked', { timestamp: old('02-02'), read: true, read_by: ['build1'], ack_required: true, acked_by: ['build1'] }),
    msg('msg_all_unread', { to: 'all', timestamp: old('02-01') }),
    msg('msg_all_read', { to: 'all', timestamp: old('03-02'), read_by: ['build2'] }),
    msg('msg_recent_read', { timestamp: old('03-15'), read: true, read_by: ['build1'] }),
  );

  it('settled: the addressee read (and acked if asked); for all with no builders known, anybody', () => {
    const settled = messages.messages.filter((m) => isSettled(m)).map((m) => m.id);
    assert.deepEqual(settled, ['msg_feb_read', 'msg_mar_read', 'msg_acked', 'msg_all_read', 'msg_recent_read']);
  });

  it('a message to all is settled only once every builder on main (its sender aside) has read it, and acked it if asked', () => {
    const builders = ['build1', 'build2', 'build3'];
    const all = (over: Partial<Message>) => msg('msg_all', { to: 'all', from: 'build1', timestamp: old('02-01'), ...over });
    assert.equal(isSettled(all({ read_by: ['build2'] }), builders), false, 'build3 has not seen it');
    assert.equal(isSettled(all({ read_by: ['build2', 'build3'] }), builders), true, 'the sender need not read its own message');
    assert.equal(isSettled(all({ read_by: ['build2', 'build3'], ack_required: true, acked_by: ['build2'] }), builders), false);
    assert.equal(isSettled(all({ read_by: ['build2', 'build3'], ack_required: true, acked_by: ['build2', 'build3'] }), builders), true);
    assert.equal(isSettled(all({ read: true }), builders), true, 'a hand-set read: true settles it');
    const inbox = file(all({ read_by: ['build2'] }));
    assert.deepEqual(archive(inbox, { [archivePath('2025-02')]: undefined }, cutoff, builders).moved, [], 'stays for build3');
  });

  it('moves exactly the settled messages older than the cutoff, grouped by their own month', () => {
    assert.deepEqual(archiveTargets(messages, cutoff), ['coordination/archive/2025-02.json', 'coordination/archive/2025-03.json']);
    const r = archive(messages, { 'coordination/archive/2025-02.json': undefined, 'coordination/archive/2025-03.json': undefined }, cutoff);
    assert.deepEqual(r.moved.map((m) => m.id).sort(), ['msg_acked', 'msg_all_read', 'msg_feb_read', 'msg_mar_read']);
    assert.deepEqual(r.file.messages.map((m) => m.id), ['msg_unread', 'msg_read_by_other', 'msg_unacked', 'msg_all_unread', 'msg_recent_read']);
    assert.deepEqual(Object.keys(r.archives).sort(), ['coordination/archive/2025-02.json', 'coordination/archive/2025-03.json']);
    assert.deepEqual(r.archives['coordination/archive/2025-02.json']!.messages.map((m) => m.id), ['msg_acked', 'msg_feb_read'], 'oldest first');
    assert.deepEqual(r.archives['coordination/archive/2025-03.json']!.messages.map((m) => m.id), ['msg_mar_read', 'msg_all_read']);
    for (const [path, doc] of Object.entries(r.archives)) {
      assert.equal(doc.$schema, ARCHIVE_SCHEMA_REF);
      assert.deepEqual(validateWith('messages.schema.json', doc, path), [], `${path} validates against messages.schema.json`);
    }
    assert.equal(messages.messages.length, 9, 'the argument is not edited');
    // Every message is in exactly one place afterwards.
    const everywhere = [...r.file.messages, ...Object.values(r.archives).flatMap((a) => a.messages)].map((m) => m.id).sort();
    assert.deepEqual(everywhere, messages.messages.map((m) => m.id).sort());
  });

  it('never archives an unread direct message, however old', () => {
    const ancient = file(msg('msg_u', { timestamp: '2001-01-01T00:00:00Z', read_by: ['alice', 'bob'] }));
    assert.deepEqual(archive(ancient, { [archivePath('2001-01')]: undefined }, now).moved, []);
  });

  it('appends to an existing archive and keeps one copy of an id already there (the live one, in place)', () => {
    const existing: MessagesFile = {
      ...emptyArchive(),
      messages: [msg('msg_earlier', { timestamp: old('02-01'), read: true }), msg('msg_feb_read', { timestamp: old('02-27'), subject: 'stale copy', read: true })],
    };
    const r = archive(messages, { 'coordination/archive/2025-02.json': existing, 'coordination/archive/2025-03.json': undefined }, cutoff);
    const feb = r.archives['coordination/archive/2025-02.json']!;
    assert.deepEqual(feb.messages.map((m) => m.id), ['msg_earlier', 'msg_feb_read', 'msg_acked']);
    assert.equal(feb.messages[1]!.subject, 'msg_feb_read', 'the live copy replaced the stale one');
    assert.equal(existing.messages.length, 2, 'the argument is not edited');
    assert.deepEqual(validateWith('messages.schema.json', feb, 'coordination/archive/2025-02.json'), []);
  });

  it('a second run moves nothing', () => {
    const r = archive(messages, { 'coordination/archive/2025-02.json': undefined, 'coordination/archive/2025-03.json': undefined }, cutoff);
    const again = archive(r.file, {}, cutoff);
    assert.deepEqual(again.moved, []);
    assert.equal(again.file, r.file);
  });

  it('refuses to run without an archive file it needs (the transaction must read it first)', () => {
    assert.throws(() => archive(messages, {}, cutoff), /coordination\/archive\/2025-02.json was not read/);
  });
});
