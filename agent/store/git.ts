// The git edge of the store. Each git command is data (an argument list) and
// one runner spawns it; tests and the benchmark pass their own runner when they
// need to count or slow down calls. Objects are read through one long-lived
// `git cat-file --batch` and written in-process as loose objects: a transaction
// never needs a working tree, so there is nothing to check out, nothing to
// reset, and nothing a crash can leave half-edited.

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { spawn, type ChildProcess } from 'node:child_process';

export interface GitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface GitRunOptions {
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export type GitRunner = (gitDir: string | null, args: string[], opts?: GitRunOptions) => Promise<GitResult>;

/** Environment for every git we spawn: never prompt, never page, stable output. */
export const GIT_ENV: Record<string, string> = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_ASKPASS: 'true',
  SSH_ASKPASS: 'true',
  GIT_PAGER: 'cat',
  LC_ALL: 'C',
  // A hung ssh must not hang a transaction forever.
  GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes -o ConnectTimeout=10',
};

/**
 * Runs one git command. node:child_process rather than execa here: this is on
 * every CLI call's path, and loading execa cost more than the fetch itself.
 * (Builds go through execa in agent/builds/runner.ts.)
 */
export const spawnGit: GitRunner = (gitDir, args, opts = {}) =>
  new Promise((resolve) => {
    const full = gitDir ? ['--git-dir', gitDir, ...args] : args;
    const child = spawn('git', full, { env: { ...process.env, ...GIT_ENV, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : null;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      resolve({ exitCode: 127, stdout: '', stderr: `cannot run git: ${e.message}` });
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      if (timedOut) resolve({ exitCode: 124, stdout, stderr: `git ${args[0]} timed out after ${opts.timeoutMs} ms` });
      else resolve({ exitCode: code ?? 128, stdout, stderr: Buffer.concat(err).toString('utf8') });
    });
  });

export interface TreeEntry {
  mode: string; // '100644', '100755', '40000', '120000', '160000'
  name: string;
  sha: string;
}

export interface GitObject {
  sha: string;
  type: 'blob' | 'tree' | 'commit' | 'tag';
  data: Buffer;
}

/**
 * A long-lived `git cat-file --batch`. Requests are answered in order, so a
 * queue of pending resolvers is all the bookkeeping needed. Objects are
 * immutable, so one reader serves a process for its whole life; git re-scans
 * its packs when asked for an object it has not seen, which covers fetches
 * made after the reader started.
 */
export class ObjectReader {
  private proc: ChildProcess | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private pending: Array<{ resolve: (o: GitObject | null) => void; reject: (e: Error) => void }> = [];

  constructor(private readonly gitDir: string) {}

  private start(): ChildProcess {
    const proc = spawn('git', ['--git-dir', this.gitDir, 'cat-file', '--batch'], {
      env: { ...process.env, ...GIT_ENV },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    proc.stdout!.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.drain();
    });
    const fail = (err: Error) => {
      if (this.proc === proc) this.proc = null;
      const waiting = this.pending.splice(0);
      for (const p of waiting) p.reject(err);
    };
    proc.on('close', () => fail(new Error('git cat-file exited')));
    proc.on('error', (e) => fail(e));
    proc.stdin!.on('error', () => {});
    this.proc = proc;
    this.hold(false);
    return proc;
  }

  /** An idle reader must not keep the process alive: only a pending read holds the event loop. */
  private hold(on: boolean): void {
    const p = this.proc as unknown as { ref?: () => void; unref?: () => void; stdin?: { ref?: () => void; unref?: () => void }; stdout?: { ref?: () => void; unref?: () => void } } | null;
    if (!p) return;
    for (const h of [p, p.stdin, p.stdout]) (on ? h?.ref : h?.unref)?.call(h);
  }

  private drain(): void {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (this.pending.length === 0) {
        this.hold(false);
        return;
      }
      if (nl < 0) return;
      const header = this.buf.subarray(0, nl).toString('utf8');
      if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
        this.buf = this.buf.subarray(nl + 1);
        this.pending.shift()!.resolve(null);
        continue;
      }
      const [sha, type, sizeText] = header.split(' ');
      const size = Number(sizeText);
      if (this.buf.length < nl + 1 + size + 1) return; // wait for the rest
      const data = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + size));
      this.buf = this.buf.subarray(nl + 1 + size + 1);
      this.pending.shift()!.resolve({ sha: sha!, type: type as GitObject['type'], data });
    }
  }

  /** Reads `rev` (a sha, or `<commit>:<path>`); null when it does not exist. */
  read(rev: string): Promise<GitObject | null> {
    if (/[\n\r]/.test(rev)) return Promise.reject(new Error(`invalid object name ${JSON.stringify(rev)}`));
    const proc = this.proc ?? this.start();
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.hold(true);
      proc.stdin!.write(rev + '\n');
    });
  }

  close(): void {
    if (this.proc) {
      this.proc.stdin!.end();
      this.proc = null;
    }
  }
}

export function parseTree(data: Buffer): TreeEntry[] {
  const out: TreeEntry[] = [];
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(32, i);
    const nul = data.indexOf(0, sp);
    out.push({
      mode: data.subarray(i, sp).toString('latin1'),
      name: data.subarray(sp + 1, nul).toString('utf8'),
      sha: data.subarray(nul + 1, nul + 21).toString('hex'),
    });
    i = nul + 21;
  }
  return out;
}

/** git orders tree entries by name, comparing a directory as if its name ended in '/'. */
function treeSortKey(e: TreeEntry): Buffer {
  return Buffer.from(e.mode === '40000' ? e.name + '/' : e.name, 'utf8');
}

export function serializeTree(entries: TreeEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => Buffer.compare(treeSortKey(a), treeSortKey(b)));
  return Buffer.concat(
    sorted.flatMap((e) => [Buffer.from(`${e.mode} ${e.name}\0`, 'utf8'), Buffer.from(e.sha, 'hex')]),
  );
}

export function hashObject(type: string, body: Buffer): { sha: string; raw: Buffer } {
  const raw = Buffer.concat([Buffer.from(`${type} ${body.length}\0`, 'latin1'), body]);
  return { sha: createHash('sha1').update(raw).digest('hex'), raw };
}

/** Writes a loose object the way git does: temp file, then an atomic rename. */
export async function writeLooseObject(gitDir: string, type: string, body: Buffer): Promise<string> {
  const { sha, raw } = hashObject(type, body);
  const dir = join(gitDir, 'objects', sha.slice(0, 2));
  const file = join(dir, sha.slice(2));
  try {
    await stat(file);
    return sha; // already there: objects are content-addressed
  } catch {
    /* write it */
  }
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `tmp_obj_${process.pid}_${randomBytes(6).toString('hex')}`);
  await writeFile(tmp, deflateSync(raw, { level: 1 }), { mode: 0o444 });
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return sha;
}

/** Reads a ref straight from the files: cheaper than spawning rev-parse. */
export async function readRef(gitDir: string, ref: string): Promise<string | null> {
  try {
    const text = (await readFile(join(gitDir, ref), 'utf8')).trim();
    if (/^[0-9a-f]{40}$/.test(text)) return text;
  } catch {
    /* fall through to packed-refs */
  }
  try {
    const packed = await readFile(join(gitDir, 'packed-refs'), 'utf8');
    for (const line of packed.split('\n')) {
      const [sha, name] = line.split(' ');
      if (name === ref && sha && /^[0-9a-f]{40}$/.test(sha)) return sha;
    }
  } catch {
    /* no packed refs */
  }
  return null;
}

export interface Identity {
  name: string;
  email: string;
}

export function commitBody(tree: string, parents: string[], who: Identity, when: Date, message: string): Buffer {
  const stamp = `${Math.floor(when.getTime() / 1000)} +0000`;
  const person = `${who.name} <${who.email}> ${stamp}`;
  const lines = [`tree ${tree}`, ...parents.map((p) => `parent ${p}`), `author ${person}`, `committer ${person}`, '', message];
  return Buffer.from(lines.join('\n').replace(/\n*$/, '\n'), 'utf8');
}
