// Named locks' pure core (agent/model/locks.ts) with a fake clock.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PreconditionError, UsageError } from '../../agent/errors.js';
import { acquire, emptyLocks, isExpired, listLocks, LockHeldError, nextToken, parseLockName, parseToken, release, renew } from '../../agent/model/locks.js';
import type { LocksFile } from '../../agent/model/types.js';
import { validateDoc } from '../../agent/model/validate.js';

const T0 = new Date('2025-03-04T05:06:07.890Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const TTL = 60_000;

describe('acquire', () => {
  it('takes a free lock with next_token and moves next_token on', () => {
    const before = emptyLocks();
    const r = acquire(before, 'deploy', 'build1', T0, TTL, 'release 2.1');
    assert.deepEqual(r.lock, { locked_by: 'build1', locked_at: '2025-03-04T05:06:07.890Z', expires_at: '2025-03-04T05:07:07.890Z', token: 1, note: 'release 2.1' });
    assert.equal(r.file.next_token, 2);
    assert.equal(r.previous, null);
    assert.deepEqual(before.locks, {}, 'the argument is not edited');
    assert.equal(before.next_token, 1);
    assert.deepEqual(validateDoc('coordination/locks.json', r.file), []);
  });

  it('refuses a live lock held by somebody else, naming holder, expiry and token', () => {
    const f = acquire(emptyLocks(), 'deploy', 'build2', T0, TTL).file;
    assert.throws(
      () => acquire(f, 'deploy', 'build1', at(59), TTL),
      (e: unknown) => e instanceof LockHeldError && e instanceof PreconditionError && e.message === 'lock deploy held by build2 until 2025-03-04T05:07:07.890Z (token 1)',
    );
  });

  it('refuses to re-acquire a lock the caller already holds: renew it instead', () => {
    const f = acquire(emptyLocks(), 'deploy', 'build1', T0, TTL).file;
    assert.throws(
      () => acquire(f, 'deploy', 'build1', at(1), TTL),
      (e: unknown) => e instanceof PreconditionError && !(e instanceof LockHeldError) && /already held by build1 .*use `lock renew deploy --token 1`/.test((e as Error).message),
    );
  });

  it('takes over an expired lock with a larger token', () => {
    const first = acquire(emptyLocks(), 'deploy', 'build1', T0, TTL);
    assert.equal(isExpired(first.lock, at(59.999)), false);
    assert.equal(isExpired(first.lock, at(60)), true, 'expires_at itself is already expired');
    const taken = acquire(first.file, 'deploy', 'build2', at(60), TTL);
    assert.ok(taken.lock.token > first.lock.token);
    assert.equal(taken.lock.locked_by, 'build2');
    assert.equal(taken.previous?.token, 1);
  });

  it('tokens strictly increase across all locks and are never reused after release', () => {
    let f = emptyLocks();
    const tokens: number[] = [];
    for (let i = 0; i < 20; i++) {
      const name = ['a', 'b', 'c'][i % 3]!;
      const r = acquire(f, name, `b${i}`, at(i), TTL);
      tokens.push(r.lock.token);
      assert.ok(r.file.next_token >= f.next_token, 'next_token never decreases');
      f = release(r.file, name, r.lock.token, at(i)).file;
      assert.ok(f.next_token > r.lock.token, 'release leaves next_token past the released token');
    }
    assert.deepEqual(tokens, Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('a hand edit that left next_token behind a held token cannot make a token repeat', () => {
    const f: LocksFile = { version: 1, next_token: 2, locks: { x: { locked_by: 'p', locked_at: T0.toISOString(), expires_at: at(10).toISOString(), token: 9 } } };
    assert.equal(nextToken(f), 10);
    const r = acquire(f, 'y', 'q', T0, TTL);
    assert.equal(r.lock.token, 10);
    assert.equal(r.file.next_token, 11);
    assert.equal(release(f, 'x', 9, T0).file.next_token, 10);
  });
});

describe('renew and release are fenced by the token', () => {
  const held = acquire(emptyLocks(), 'deploy', 'build1', T0, TTL);
  const takenOver = acquire(held.file, 'deploy', 'build2', at(61), TTL);

  it('renew with the current token extends to now + ttl', () => {
    const r = renew(held.file, 'deploy', 1, at(30), TTL);
    assert.equal(r.lock.expires_at, at(90).toISOString());
    assert.equal(r.lock.locked_at, T0.toISOString(), 'locked_at stays');
    assert.equal(r.file.next_token, held.file.next_token, 'renew hands out no token');
  });

  it('renew of an expired lock nobody took yet is allowed with its token', () => {
    const r = renew(held.file, 'deploy', 1, at(120), TTL);
    assert.equal(r.lock.token, 1);
    assert.equal(r.lock.expires_at, at(180).toISOString());
  });

  it('the old holder\'s renew and release are refused after a takeover', () => {
    assert.throws(() => renew(takenOver.file, 'deploy', 1, at(62), TTL), (e: unknown) => e instanceof PreconditionError && /token 1 is stale: lock deploy is held by build2 with token 2/.test((e as Error).message));
    assert.throws(() => release(takenOver.file, 'deploy', 1, at(62)), /token 1 is stale/);
    assert.equal(release(takenOver.file, 'deploy', 2, at(62)).file.locks.deploy, undefined);
  });

  it('after a release the old token is refused too, and a token of another lock is no good', () => {
    const released = release(held.file, 'deploy', 1, at(1)).file;
    assert.throws(() => release(released, 'deploy', 1, at(2)), /lock deploy is not held: token 1 is no longer valid/);
    assert.throws(() => renew(released, 'deploy', 1, at(2), TTL), PreconditionError);
    const two = acquire(held.file, 'other', 'build3', T0, TTL);
    assert.throws(() => release(two.file, 'deploy', two.lock.token, T0), /stale/);
  });

  it('list marks expired locks', () => {
    const list = listLocks(takenOver.file, at(200));
    assert.deepEqual(list.map((l) => [l.name, l.locked_by, l.token, l.expired]), [['deploy', 'build2', 2, true]]);
    assert.equal(listLocks(takenOver.file, at(62))[0]!.expired, false);
  });
});

describe('lock input checks', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['../x', /^lock name "\.\.\/x": expected letters/],
    ['x'.repeat(300), /^lock name "x{60}…": expected letters/],
    ['a;rm -rf /', /^lock name/],
    ['$(id)', /^lock name/],
    ['.hidden', /^lock name/],
    ['', /^lock name/],
  ];
  for (const [value, re] of bad) {
    it(`refuses lock name ${JSON.stringify(String(value).slice(0, 20))}`, () => {
      assert.throws(() => parseLockName(value), (e: unknown) => e instanceof UsageError && re.test((e as Error).message) && !(e as Error).message.includes('\n'));
    });
  }
  it('accepts the schema\'s names', () => {
    for (const n of ['deploy', 'db.migrate', 'a', 'x'.repeat(64), 'Release_2-1']) assert.equal(parseLockName(n), n);
  });
  it('tokens are positive integers', () => {
    assert.equal(parseToken('7'), 7);
    for (const v of ['abc', '0', '-1', '1.5', '', '1e3']) assert.throws(() => parseToken(v), (e: unknown) => e instanceof UsageError && (e as Error).message.startsWith(`--token ${JSON.stringify(v)}: expected`));
    assert.throws(() => parseToken(undefined), /--token is required/);
  });
});
