// Lock operations: each is one transaction running a pure function of
// agent/model/locks.ts. `acquire --wait` is the same transaction re-run with
// backoff until it succeeds or the wait is over; while it waits it only
// fetches, it pushes nothing (Store.transact re-checks a refusal made on a
// remembered tip against a fresh fetch, so every try sees the current main).

import { randomBytes } from 'node:crypto';
import { OperationError } from '../errors.js';
import * as locks from '../model/locks.js';
import { PATHS, type Lock, type LocksFile } from '../model/types.js';
import type { Store, TxOutcome } from './store.js';

export interface LockOpDeps {
  clock?: () => Date;
  random?: (n: number) => Buffer;
  /** How --wait sleeps between tries (tests may shorten it). */
  sleep?: (ms: number) => Promise<void>;
}

function deps(d: LockOpDeps = {}) {
  return {
    now: d.clock ?? (() => new Date()),
    rand: d.random ?? randomBytes,
    sleep: d.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
  };
}

function locksOf(file: LocksFile | undefined): LocksFile {
  return file ?? locks.emptyLocks();
}

export type HeldLock = Lock & { name: string };

export interface AcquireArgs {
  name: string;
  holder: string;
  ttlMs: number;
  /** Keep trying this long while somebody else holds the lock; 0: refuse at once. */
  waitMs?: number;
  note?: string;
}

export async function acquireLock(store: Store, args: AcquireArgs, d?: LockOpDeps): Promise<TxOutcome<HeldLock>> {
  const { now, rand, sleep } = deps(d);
  const waitMs = args.waitMs ?? 0;
  // The wait is a span of this host's time, not a coordination timestamp: a monotonic clock.
  const started = performance.now();
  for (let tries = 0; ; tries++) {
    try {
      return await store.transact({
        op: 'lock',
        reads: [PATHS.locks],
        mutate: (view) => {
          const r = locks.acquire(locksOf(view.get<LocksFile>(PATHS.locks)), args.name, args.holder, now(), args.ttlMs, args.note);
          const over = r.previous ? ` (took over expired token ${r.previous.token} of ${r.previous.locked_by})` : '';
          return {
            result: { name: args.name, ...r.lock },
            writes: { [PATHS.locks]: r.file },
            message: `lock ${args.name} acquired by ${args.holder} (token ${r.lock.token})${over}`,
            trailers: { 'Coord-Lock': args.name, 'Coord-Token': String(r.lock.token) },
          };
        },
      });
    } catch (e) {
      if (!(e instanceof locks.LockHeldError)) throw e;
      const left = waitMs - (performance.now() - started);
      if (left <= 0) {
        if (waitMs === 0) throw e;
        throw new OperationError(`${e.message}; gave up after waiting ${Math.round(waitMs / 100) / 10} s`);
      }
      // Full jitter so waiters spread out, but wake up when the lease runs out.
      const cap = Math.min(500, 20 * 2 ** Math.min(tries, 5));
      const untilExpiry = Date.parse(e.lock.expires_at) - now().getTime() + 5;
      const pause = Math.max(5, Math.min((rand(2).readUInt16BE(0) / 65536) * cap + 5, untilExpiry, left));
      await sleep(pause);
    }
  }
}

export async function renewLock(store: Store, args: { name: string; token: number; ttlMs: number }, d?: LockOpDeps): Promise<TxOutcome<HeldLock>> {
  const { now } = deps(d);
  return store.transact({
    op: 'lock-renew',
    reads: [PATHS.locks],
    mutate: (view) => {
      const r = locks.renew(locksOf(view.get<LocksFile>(PATHS.locks)), args.name, args.token, now(), args.ttlMs);
      return {
        result: { name: args.name, ...r.lock },
        writes: { [PATHS.locks]: r.file },
        message: `lock ${args.name} renewed by ${r.lock.locked_by} until ${r.lock.expires_at} (token ${args.token})`,
        trailers: { 'Coord-Lock': args.name, 'Coord-Token': String(args.token) },
      };
    },
  });
}

export async function releaseLock(store: Store, args: { name: string; token: number }, d?: LockOpDeps): Promise<TxOutcome<HeldLock>> {
  const { now } = deps(d);
  return store.transact({
    op: 'lock-release',
    reads: [PATHS.locks],
    mutate: (view) => {
      const r = locks.release(locksOf(view.get<LocksFile>(PATHS.locks)), args.name, args.token, now());
      return {
        result: { name: args.name, ...r.lock },
        writes: { [PATHS.locks]: r.file },
        message: `lock ${args.name} released by ${r.lock.locked_by} (token ${args.token})`,
        trailers: { 'Coord-Lock': args.name, 'Coord-Token': String(args.token) },
      };
    },
  });
}

export async function readLocks(store: Store): Promise<LocksFile> {
  const view = await store.read([PATHS.locks]);
  return locksOf(view.get<LocksFile>(PATHS.locks));
}
