// Named locks (leases with fencing tokens) as pure functions: state, holder
// and time in, new state out. No fs, no git, no clock reads.
//
// The fencing token is the holder's credential. Every new holding of any lock
// gets next_token, and next_token only ever goes up (release and expiry never
// lower it), so a holder presumed dead that comes back carries a token smaller
// than the current one and every guarded write, renew and release with it is
// refused.
//
// Rules chosen here:
// - acquire: a free lock, or one whose expires_at has passed (whoever held
//   it, the caller included), is taken with a fresh token. A live lock is
//   refused: held by somebody else (LockHeldError, which `--wait` polls on), or
//   held by the caller, who must renew it instead: taking it again would hand
//   out a second token for one holding.
// - renew and release go by token alone: whoever has the current token is the
//   holder (a script running as another user may release a builder's lock if
//   it was given the token). Renewing an expired lock that nobody has taken yet
//   is allowed: no newer token exists, so nobody can have acted on the lapse.
//   Renew sets expires_at to now + ttl.

import { PreconditionError, UsageError } from '../errors.js';
import { NAME_RE } from './input.js';
import type { Iso, Lock, LocksFile } from './types.js';

export const LOCKS_SCHEMA_REF = '../schemas/locks.schema.json';

export function emptyLocks(): LocksFile {
  return { $schema: LOCKS_SCHEMA_REF, version: 1, next_token: 1, locks: {} };
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

/** The schema's pattern for lock names: no '/', no leading '.', no shell metacharacters. */
export function parseLockName(value: unknown, flag = 'lock name'): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)`);
  }
  return value;
}

export function parseToken(value: unknown, flag = '--token'): number {
  if (value === undefined) throw new UsageError(`${flag} is required: the fencing token \`lock acquire\` printed`);
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d{1,15}\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} ${show(value)}: expected the fencing token printed by \`lock acquire\` (a positive integer)`);
  return n;
}

/** Refused because somebody else holds the lock; `lock acquire --wait` retries on exactly this. */
export class LockHeldError extends PreconditionError {
  constructor(
    readonly lockName: string,
    readonly lock: Lock,
  ) {
    super(`lock ${lockName} held by ${lock.locked_by} until ${lock.expires_at} (token ${lock.token})`);
  }
}

export function isExpired(lock: Lock, now: Date): boolean {
  return Date.parse(lock.expires_at) <= now.getTime();
}

export interface LockView extends Lock {
  name: string;
  expired: boolean;
}

export function listLocks(file: LocksFile, now: Date): LockView[] {
  return Object.entries(file.locks)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, lock]) => ({ name, ...lock, expired: isExpired(lock, now) }));
}

function iso(d: Date): Iso {
  return d.toISOString();
}

function expiry(now: Date, ttlMs: number): Iso {
  return iso(new Date(now.getTime() + ttlMs));
}

/** The token the next holder gets: next_token, or past any larger token a hand edit left. */
export function nextToken(file: LocksFile): number {
  const highest = Math.max(0, ...Object.values(file.locks).map((l) => l.token));
  return Math.max(file.next_token, highest + 1);
}

export function acquire(file: LocksFile, name: string, holder: string, now: Date, ttlMs: number, note?: string): { file: LocksFile; lock: Lock; previous: Lock | null } {
  const cur = file.locks[name];
  if (cur && !isExpired(cur, now)) {
    if (cur.locked_by === holder) {
      throw new PreconditionError(`lock ${name} is already held by ${holder} until ${cur.expires_at} (token ${cur.token}): use \`lock renew ${name} --token ${cur.token}\``);
    }
    throw new LockHeldError(name, cur);
  }
  const token = nextToken(file);
  const lock: Lock = { locked_by: holder, locked_at: iso(now), expires_at: expiry(now, ttlMs), token };
  if (note) lock.note = note;
  return { file: { ...file, next_token: token + 1, locks: { ...file.locks, [name]: lock } }, lock, previous: cur ?? null };
}

/** The lock as held with this token, or a refusal saying what happened to it. */
function current(file: LocksFile, name: string, token: number, now: Date): Lock {
  const cur = file.locks[name];
  if (!cur) throw new PreconditionError(`lock ${name} is not held: token ${token} is no longer valid (released, or taken over and released)`);
  if (cur.token !== token) {
    const state = isExpired(cur, now) ? `expired at ${cur.expires_at}` : `until ${cur.expires_at}`;
    throw new PreconditionError(`token ${token} is stale: lock ${name} is held by ${cur.locked_by} with token ${cur.token} (${state})`);
  }
  return cur;
}

export function renew(file: LocksFile, name: string, token: number, now: Date, ttlMs: number): { file: LocksFile; lock: Lock } {
  const cur = current(file, name, token, now);
  const lock: Lock = { ...cur, expires_at: expiry(now, ttlMs) };
  return { file: { ...file, locks: { ...file.locks, [name]: lock } }, lock };
}

export function release(file: LocksFile, name: string, token: number, now: Date): { file: LocksFile; lock: Lock } {
  const cur = current(file, name, token, now);
  const locks = { ...file.locks };
  delete locks[name];
  // next_token stays: a token is never handed out twice.
  return { file: { ...file, next_token: Math.max(file.next_token, nextToken(file)), locks }, lock: cur };
}
