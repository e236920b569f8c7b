// The local lock on a private clone: the daemon and CLI calls on one host take
// turns on the clone. Correctness never depends on it (the remote's
// compare-and-swap does that); it saves wasted pushes and git's own
// "cannot lock ref" errors when two processes fetch into one clone.
//
// proper-lockfile recovers a lock whose holder stopped refreshing it (mtime
// older than `stale`). A process killed with SIGKILL on this host is detected
// sooner: the lock directory carries an owner file with host and pid, and a
// dead pid there frees the lock at once instead of after the stale period.
// The owner file sits beside the lock directory (proper-lockfile removes the
// directory with rmdir) and names the directory's inode and birth time, so an
// owner file left by a killed process is never taken for a newer lock's.

import { hostname } from 'node:os';
import { readFile, rename, rm, writeFile, mkdir, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import lockfile from 'proper-lockfile';
import { OperationError } from '../errors.js';

const HOST = hostname();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LocalLockOptions {
  /** How long to wait for another process on this host, in ms. */
  waitMs?: number;
  staleMs?: number;
}

export class LocalLock {
  private readonly lockDir: string;
  /** Serializes callers inside this process: proper-lockfile is per file, not per caller. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly target: string,
    private readonly opts: LocalLockOptions = {},
  ) {
    this.lockDir = `${target}.lock`;
  }

  get path(): string {
    return this.lockDir;
  }

  /** Runs fn while holding the lock. */
  with<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(
      () => this.holding(fn),
      () => this.holding(fn),
    );
    this.chain = run.catch(() => {});
    return run;
  }

  private async holding<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      await release().catch(() => {});
    }
  }

  private async acquire(): Promise<() => Promise<void>> {
    const deadline = Date.now() + (this.opts.waitMs ?? 120_000);
    await mkdir(this.target, { recursive: true });
    let delay = 2;
    for (;;) {
      try {
        const release = await lockfile.lock(this.target, {
          lockfilePath: this.lockDir,
          realpath: false,
          stale: this.opts.staleMs ?? 10_000,
          retries: 0,
          // A compromised lock only costs efficiency (see above): log-free and non-fatal.
          onCompromised: () => {},
        });
        const st = await stat(this.lockDir);
        await writeFile(this.ownerFile, `${HOST} ${process.pid} ${st.ino} ${st.birthtimeMs}\n`).catch(() => {});
        return async () => {
          await unlink(this.ownerFile).catch(() => {});
          await release();
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      }
      if (await this.breakIfOwnerDead()) continue;
      if (Date.now() > deadline) {
        throw new OperationError(`local lock ${this.lockDir} is held by another buildcoord process on this host; try again, or remove it if no buildcoord is running`);
      }
      await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  private get ownerFile(): string {
    return `${this.lockDir}.owner`;
  }

  /** True if the holder was a process on this host that no longer exists and its lock is gone now. */
  private async breakIfOwnerDead(): Promise<boolean> {
    let owner: string;
    let st;
    try {
      owner = await readFile(this.ownerFile, 'utf8');
      st = await stat(this.lockDir);
    } catch {
      return false; // being created or released right now
    }
    const [host, pidText, ino, birth] = owner.trim().split(' ');
    const pid = Number(pidText);
    if (host !== HOST || ino !== String(st.ino) || birth !== String(st.birthtimeMs)) return false;
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) return false;
    // Rename first: only one breaker can move a given directory, so two
    // processes that both saw the dead owner do not both delete a fresh lock.
    const grave = `${this.lockDir}.dead-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await rename(this.lockDir, grave);
    } catch {
      return false;
    }
    await rm(grave, { recursive: true, force: true });
    return true;
  }

  /** For doctor: is the lock free right now? */
  async isFree(): Promise<boolean> {
    try {
      return !(await lockfile.check(this.target, { lockfilePath: this.lockDir, realpath: false, stale: this.opts.staleMs ?? 10_000 }));
    } catch {
      return true;
    }
  }
}
