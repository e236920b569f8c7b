// The one way to change coordination state: transact(spec).
//
//   lock the private clone -> know origin/main -> read + validate what the op
//   needs -> pure mutate -> canonical write + validate -> commit with trailers
//   -> push without force -> on rejection fetch and re-run mutate on the new
//   state; on an unknown outcome fetch and look for our own commit first.
//
// Never pull, merge or rebase: re-running the pure mutation on fresh state is
// what makes a rejected push safe. Unlike a checkout-based loop, the private
// clone is bare: objects are read with cat-file and written in-process, so
// there is no working tree to reset and nothing a killed process can leave
// half-edited. After its own push succeeded a long-lived process knows
// origin/main already and skips the next fetch; if somebody else moved main
// meanwhile the push is rejected and the loop fetches then.

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { InvalidFileError, OperationError, PermissionError, PreconditionError, UnreachableError } from '../errors.js';
import { canonicalJson } from '../model/canonical.js';
import { formatProblem, parseAndValidate, schemaFor, validateDoc } from '../model/validate.js';
import { commitBody, spawnGit, ObjectReader, parseTree, readRef, writeLooseObject, type GitRunner, type Identity } from './git.js';
import { LocalLock } from './locallock.js';
import { applyChanges, type FileChanges } from './tree.js';

export interface TxLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

const silent: TxLogger = { info() {}, warn() {}, debug() {} };

export interface StoreOptions {
  /** The coordination remote: a URL (file://, git://, ssh://, https://) or a local path. */
  remote: string;
  /** BUILDCOORD_HOME: private clones live under it. */
  home: string;
  /** Who commits: the builder or person running this process. */
  actor: string;
  identity?: Identity;
  git?: GitRunner;
  clock?: () => Date;
  random?: (bytes: number) => Buffer;
  logger?: TxLogger;
  /** Push attempts before giving up (each after a fresh fetch). */
  maxAttempts?: number;
  /** Time budget of one transaction's retries, ms. */
  maxTxMs?: number;
  /** Upper bound of one backoff sleep, ms. */
  maxBackoffMs?: number;
  networkTimeoutMs?: number;
  lockWaitMs?: number;
}

export interface TxView {
  /** The commit the state was read from; null when main does not exist yet. */
  readonly commit: string | null;
  get<T>(path: string): T | undefined;
  /** Text of a non-JSON file that was asked for as a read. */
  text(path: string): string | undefined;
  /** Names in a directory asked for as a read ending in '/'. */
  list(dir: string): string[];
  /** The subdirectories among them. */
  dirs(dir: string): string[];
  /** Problems of soft reads that were left out. */
  readonly problems: string[];
}

export interface TxPlan<R> {
  result: R;
  /** JSON documents to write (null deletes the file). Written canonically and validated. */
  writes?: Record<string, unknown>;
  /** Other files (logs), written as they are; null deletes. */
  raw?: Record<string, string | Buffer | { data: string | Buffer; exec: true } | null>;
  /** First line of the commit message: what a person reading `git log` should see. */
  message?: string;
  trailers?: Record<string, string>;
}

export interface TxSpec<R> {
  /** Coord-Op trailer: claim, enqueue, complete, ... */
  op: string;
  /** Files to read and validate; a path ending in '/' lists that directory. */
  reads: string[];
  /**
   * Files the operation can do without: read like `reads`, but one that is
   * invalid is left out (view.get gives undefined, view.problems says why)
   * instead of stopping the operation. For summaries of other builders' files.
   */
  softReads?: string[];
  /** Pure: the state in, the plan out. Throw PreconditionError to refuse. */
  mutate(view: TxView): TxPlan<R>;
}

export interface TxOutcome<R> {
  result: R;
  commit: string | null;
  pushAttempts: number;
}

type Loaded = { docs: Map<string, unknown>; texts: Map<string, string>; listings: Map<string, string[]>; dirListings: Map<string, string[]>; softProblems: string[] };

function normalizeRemote(remote: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || /^[^/]+@[^/]+:/.test(remote)) return remote;
  return isAbsolute(remote) ? remote : resolve(remote);
}

function slug(remote: string): string {
  const base = remote.replace(/\.git\/?$/, '').split(/[/:]/).filter(Boolean).pop() ?? 'repo';
  const safe = base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40);
  return `${safe}-${createHash('sha256').update(remote).digest('hex').slice(0, 10)}`;
}

const MAIN = 'refs/heads/main';
const TRACKING = 'refs/remotes/origin/main';

export class Store {
  readonly remote: string;
  readonly cloneDir: string;
  readonly actor: string;
  private readonly git: GitRunner;
  private readonly clock: () => Date;
  private readonly random: (n: number) => Buffer;
  private readonly log: TxLogger;
  private readonly identity: Identity;
  private readonly lock: LocalLock;
  private readonly maxAttempts: number;
  private readonly maxTxMs: number;
  private readonly maxBackoffMs: number;
  private readonly netTimeout: number;
  private reader: ObjectReader | null = null;
  private ready = false;
  /** Counters for benchmarks and logs: every push and fetch this store made. */
  readonly stats = { pushes: 0, rejectedPushes: 0, fetches: 0 };
  /** origin/main as of our own last successful push: lets the next transaction skip a fetch. */
  private knownTip: string | null = null;

  constructor(opts: StoreOptions) {
    this.remote = normalizeRemote(opts.remote);
    this.cloneDir = join(opts.home, 'clones', `${slug(this.remote)}.git`);
    this.actor = opts.actor;
    this.git = opts.git ?? spawnGit;
    this.clock = opts.clock ?? (() => new Date());
    this.random = opts.random ?? randomBytes;
    this.log = opts.logger ?? silent;
    this.identity = opts.identity ?? { name: `buildcoord ${opts.actor}`, email: `${opts.actor}@buildcoord.invalid` };
    this.lock = new LocalLock(this.cloneDir, { waitMs: opts.lockWaitMs });
    // Under heavy contention (8 builders on one remote) a writer can lose many
    // rounds in a row; the time budget, not the count, is what normally ends it.
    this.maxAttempts = opts.maxAttempts ?? 200;
    this.maxTxMs = opts.maxTxMs ?? 120_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 1000;
    this.netTimeout = opts.networkTimeoutMs ?? 60_000;
  }

  get localLock(): LocalLock {
    return this.lock;
  }

  close(): void {
    this.reader?.close();
    this.reader = null;
  }

  private objects(): ObjectReader {
    return (this.reader ??= new ObjectReader(this.cloneDir));
  }

  private async gitOk(args: string[], what: string): Promise<string> {
    const r = await this.git(this.cloneDir, args);
    if (r.exitCode !== 0) throw new OperationError(`git ${what} failed in ${this.cloneDir}: ${firstLine(r.stderr)}`);
    return r.stdout;
  }

  /** Creates the private bare clone on first use; idempotent, safe under the local lock. */
  private async ensureClone(): Promise<void> {
    if (this.ready) return;
    try {
      await stat(join(this.cloneDir, 'HEAD'));
    } catch {
      await mkdir(this.cloneDir, { recursive: true });
      await this.gitOk(['init', '--quiet', '--bare'], 'init');
    }
    // The settings are written once; later processes see the marker and spawn nothing.
    const marker = join(this.cloneDir, 'buildcoord-configured');
    const signature = `${this.remote}\n1\n`;
    try {
      if ((await readFile(marker, 'utf8')) === signature) {
        this.ready = true;
        return;
      }
    } catch {
      /* configure below */
    }
    const want: Array<[string, string]> = [
      ['remote.origin.url', this.remote],
      ['remote.origin.fetch', `+${MAIN}:${TRACKING}`],
      // Protocol v2 costs a round trip more per fetch on small repositories; we fetch one ref.
      ['protocol.version', '1'],
      ['fetch.writeCommitGraph', 'false'],
      ['core.logAllRefUpdates', 'false'],
    ];
    for (const [key, value] of want) {
      const cur = await this.git(this.cloneDir, ['config', '--get', key]);
      if (cur.stdout.trim() !== value) await this.gitOk(['config', key, value], `config ${key}`);
    }
    await writeFile(marker, signature);
    this.ready = true;
  }

  private classifyRemoteFailure(stderr: string, what: string): Error {
    const line = firstLine(stderr);
    if (/permission denied|authentication failed|access denied|403|401|could not read Username|publickey/i.test(stderr)) {
      return new PermissionError(`${what} ${this.remote}: permission denied (${line})`);
    }
    if (/couldn't find remote ref|no such ref/i.test(stderr)) {
      return new OperationError(`${this.remote} has no main branch yet: run \`buildcoord init --repo ${this.remote}\``);
    }
    return new UnreachableError(`cannot reach coordination remote ${this.remote}: ${line}`);
  }

  /** Fetches main into the private clone; returns its sha, or null if the remote has no main. */
  private async fetch(): Promise<string | null> {
    this.stats.fetches++;
    const r = await this.git(this.cloneDir, ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', 'origin', `+${MAIN}:${TRACKING}`], {
      timeoutMs: this.netTimeout,
    });
    if (r.exitCode !== 0) {
      if (/couldn't find remote ref/i.test(r.stderr)) return null;
      throw this.classifyRemoteFailure(r.stderr, 'fetch from');
    }
    const tip = await readRef(this.cloneDir, TRACKING);
    this.knownTip = tip;
    return tip;
  }

  /** For the heartbeat branch writer (agent/store/heartbeat.ts): the same clone, runner and clock. */
  async internals() {
    await this.lock.with(() => this.ensureClone());
    return {
      cloneDir: this.cloneDir,
      git: this.git,
      reader: this.objects(),
      clock: this.clock,
      identity: this.identity,
      netTimeout: this.netTimeout,
      classify: (stderr: string, what: string) => this.classifyRemoteFailure(stderr, what),
    };
  }

  /** Cheap check for the daemon: main's sha on the remote without fetching objects. */
  async remoteTip(): Promise<string | null> {
    await this.ensureClone();
    const r = await this.git(this.cloneDir, ['ls-remote', '--heads', 'origin', MAIN], { timeoutMs: this.netTimeout });
    if (r.exitCode !== 0) throw this.classifyRemoteFailure(r.stderr, 'ls-remote');
    const sha = r.stdout.split('\t')[0]?.trim();
    return sha && /^[0-9a-f]{40}$/.test(sha) ? sha : null;
  }

  /** The last origin/main this process saw, without touching the network. */
  get lastKnownTip(): string | null {
    return this.knownTip;
  }

  private async load(commit: string | null, reads: string[], soft: string[] = []): Promise<Loaded> {
    const loaded: Loaded = { docs: new Map(), texts: new Map(), listings: new Map(), dirListings: new Map(), softProblems: [] };
    if (!commit) return loaded;
    const reader = this.objects();
    // A path that is missing must mean "no such file", never "objects not fetched":
    // treating the latter as an empty queue would push a queue without its jobs.
    if (!(await reader.read(`${commit}^{tree}`))) throw new Error(`commit ${commit} is missing from ${this.cloneDir}`);
    const hard: string[] = [];
    const all = [...reads.map((path) => ({ path, problems: hard })), ...soft.filter((p) => !reads.includes(p)).map((path) => ({ path, problems: loaded.softProblems }))];
    await Promise.all(
      all.map(async ({ path, problems }) => {
        if (path.endsWith('/')) {
          const dir = path.replace(/\/+$/, '');
          const obj = await reader.read(dir ? `${commit}:${dir}` : `${commit}^{tree}`);
          const entries = obj && obj.type === 'tree' ? parseTree(obj.data) : [];
          loaded.listings.set(path, entries.map((e) => e.name));
          loaded.dirListings.set(path, entries.filter((e) => e.mode === '40000').map((e) => e.name));
          return;
        }
        const obj = await reader.read(`${commit}:${path}`);
        if (!obj) return;
        if (obj.type !== 'blob') {
          problems.push(`${path}: /: expected a file, found a ${obj.type}`);
          return;
        }
        const text = obj.data.toString('utf8');
        if (!path.endsWith('.json')) {
          loaded.texts.set(path, text);
          return;
        }
        const { doc, problems: found } = parseAndValidate(path, text);
        if (found.length) problems.push(...found.map(formatProblem));
        else loaded.docs.set(path, doc);
      }),
    );
    if (hard.length) throw new InvalidFileError(hard.sort());
    return loaded;
  }

  private view(commit: string | null, loaded: Loaded): TxView {
    return {
      commit,
      get: <T>(path: string) => structuredClone(loaded.docs.get(path)) as T | undefined,
      text: (path) => loaded.texts.get(path),
      list: (dir) => loaded.listings.get(dir.endsWith('/') ? dir : `${dir}/`) ?? [],
      dirs: (dir) => loaded.dirListings.get(dir.endsWith('/') ? dir : `${dir}/`) ?? [],
      problems: loaded.softProblems,
    };
  }

  /** A consistent read of the current main (fetches first; `fetch: false` reads the main this process saw last). */
  async read(reads: string[], opts: { fetch?: boolean } = {}): Promise<TxView> {
    return this.lock.with(async () => {
      await this.ensureClone();
      const tip = opts.fetch === false && this.knownTip ? this.knownTip : await this.fetch();
      return this.view(tip, await this.load(tip, reads));
    });
  }

  /** Every file path on main (after a fetch) with its bytes, for whole-repository checks. */
  async snapshot(filter: (path: string) => boolean): Promise<{ commit: string | null; files: Map<string, Buffer> }> {
    return this.lock.with(async () => {
      await this.ensureClone();
      const tip = await this.fetch();
      const files = new Map<string, Buffer>();
      if (!tip) return { commit: null, files };
      const ls = await this.gitOk(['ls-tree', '-r', '-z', '--name-only', tip], 'ls-tree');
      const reader = this.objects();
      for (const path of ls.split('\0').filter((p) => p && filter(p))) {
        const obj = await reader.read(`${tip}:${path}`);
        if (obj) files.set(path, obj.data);
      }
      return { commit: tip, files };
    });
  }

  /** Raw bytes of a file at a commit (for logs), or null. */
  async readBlob(commit: string, path: string): Promise<Buffer | null> {
    const obj = await this.objects().read(`${commit}:${path}`);
    return obj && obj.type === 'blob' ? obj.data : null;
  }

  private serialize(plan: TxPlan<unknown>): FileChanges {
    const changes: FileChanges = new Map();
    const problems: string[] = [];
    for (const [path, doc] of Object.entries(plan.writes ?? {})) {
      if (doc === null || doc === undefined) {
        changes.set(path, null);
        continue;
      }
      const found = validateDoc(path, doc);
      // Our own output failing its schema is a bug, never something to push.
      if (found.length) problems.push(...found.map(formatProblem));
      changes.set(path, Buffer.from(canonicalJson(doc, schemaFor(path)), 'utf8'));
    }
    if (problems.length) throw new Error(`refusing to write invalid coordination data: ${problems.join('; ')}`);
    for (const [path, content] of Object.entries(plan.raw ?? {})) {
      const bytes = (c: string | Buffer) => (Buffer.isBuffer(c) ? c : Buffer.from(c, 'utf8'));
      if (content === null) changes.set(path, null);
      else if (typeof content === 'object' && 'exec' in content) changes.set(path, { data: bytes(content.data), exec: true });
      else changes.set(path, bytes(content));
    }
    return changes;
  }

  private message(op: string, plan: TxPlan<unknown>, nonce: string): string {
    const trailers: Record<string, string> = { 'Coord-Op': op, 'Coord-Builder': this.actor, ...plan.trailers, 'Coord-Nonce': nonce };
    const lines = Object.entries(trailers).map(([k, v]) => `${k}: ${String(v).replace(/[\r\n]+/g, ' ')}`);
    const subject = (plan.message ?? op).replace(/[\r\n]+/g, ' ').slice(0, 200);
    return `${subject}\n\n${lines.join('\n')}\n`;
  }

  private async makeCommit(parent: string | null, changes: FileChanges, message: string): Promise<string> {
    const reader = this.objects();
    let rootTree: string | null = null;
    if (parent) {
      const obj = await reader.read(`${parent}^{tree}`);
      if (!obj) throw new Error(`commit ${parent} is missing from ${this.cloneDir}`);
      rootTree = obj.sha;
    }
    const tree = await applyChanges(this.cloneDir, reader, rootTree, changes);
    if (tree === rootTree) return parent!; // nothing actually changed
    const body = commitBody(tree, parent ? [parent] : [], this.identity, this.clock(), message);
    return writeLooseObject(this.cloneDir, 'commit', body);
  }

  /** Pushes commit to main. 'ok' | 'rejected' | 'unknown' (no verdict from the remote). */
  private async push(commit: string, expectOld: string | null): Promise<'ok' | 'rejected' | 'unknown'> {
    this.stats.pushes++;
    const r = await this.git(this.cloneDir, ['push', '--porcelain', '--no-verify', 'origin', `${commit}:${MAIN}`], { timeoutMs: this.netTimeout });
    const status = r.stdout.split('\n').find((l) => l.includes(`:${MAIN}\t`));
    if (r.exitCode === 0 && status && !status.startsWith('!')) {
      this.knownTip = commit;
      return 'ok';
    }
    if (status?.startsWith('!')) {
      // Two pushes racing on one remote can lose the remote's own ref lock: that is a
      // lost compare-and-swap like any other, not a refusal.
      if (/\[remote rejected\].*(failed to update ref|failed to lock|cannot lock|incorrect old value)/.test(status)) return 'rejected';
      if (/\[remote rejected\]/.test(status)) {
        throw new PermissionError(`${this.remote} refused the push: ${status.split('\t').pop()}`);
      }
      if (/\[rejected\]/.test(status)) return 'rejected';
    }
    if (/permission denied|authentication failed|403|publickey/i.test(r.stderr)) {
      throw new PermissionError(`push to ${this.remote}: permission denied (${firstLine(r.stderr)})`);
    }
    this.log.warn({ op: 'push', exitCode: r.exitCode, stderr: firstLine(r.stderr), expectOld }, 'push outcome unknown');
    return 'unknown';
  }

  private async isAncestor(commit: string, tip: string): Promise<boolean> {
    if (commit === tip) return true;
    const r = await this.git(this.cloneDir, ['merge-base', '--is-ancestor', commit, tip]);
    return r.exitCode === 0;
  }

  private backoff(attempt: number): Promise<void> {
    // Full jitter: racing builders spread out instead of colliding again in step.
    const cap = Math.min(this.maxBackoffMs, 4 * 2 ** Math.min(attempt, 10));
    const ms = (this.random(2).readUInt16BE(0) / 65536) * cap;
    return new Promise((r) => setTimeout(r, ms));
  }

  async transact<R>(spec: TxSpec<R>): Promise<TxOutcome<R>> {
    return this.lock.with(async () => {
      await this.ensureClone();
      const started = Date.now();
      // A tip remembered from our own last push saves a fetch, but it may be old news.
      // A push on it is safe (the remote rejects it if main moved); a refusal or a
      // "nothing to do" is not final until checked against a fresh fetch.
      let fromCache = this.knownTip !== null;
      let tip = this.knownTip ?? (await this.fetch());
      // Only init may write to a remote without main: anything else pointed at the
      // wrong (empty) repository would quietly start a new, partial layout there.
      if (!tip && spec.op !== 'init') throw this.classifyRemoteFailure("couldn't find remote ref main", 'read');
      const refresh = async (): Promise<boolean> => {
        fromCache = false;
        const fresh = await this.fetch();
        if (fresh === tip) return false;
        tip = fresh;
        return true;
      };
      let pushAttempts = 0;
      for (let attempt = 1; attempt <= this.maxAttempts && Date.now() - started < this.maxTxMs; attempt++) {
        let plan: TxPlan<R>;
        try {
          plan = spec.mutate(this.view(tip, await this.load(tip, spec.reads, spec.softReads)));
        } catch (e) {
          if (fromCache && (await refresh())) continue;
          throw e;
        }
        const changes = this.serialize(plan);
        if (changes.size === 0) {
          if (fromCache && (await refresh())) continue;
          return { result: plan.result, commit: null, pushAttempts };
        }
        const nonce = this.random(8).toString('hex');
        const commit = await this.makeCommit(tip, changes, this.message(spec.op, plan, nonce));
        if (commit === tip) {
          if (fromCache && (await refresh())) continue;
          return { result: plan.result, commit: null, pushAttempts };
        }
        pushAttempts++;
        const outcome = await this.push(commit, tip);
        if (outcome === 'ok') {
          this.log.info({ op: spec.op, ...plan.trailers, commit, pushAttempts, ms: Date.now() - started }, 'transaction pushed');
          return { result: plan.result, commit, pushAttempts };
        }
        this.stats.rejectedPushes++;
        // Rejected or unknown: learn what main is now. If our own commit is in it, the
        // push went through after all (a dropped connection after the remote accepted).
        let fresh: string | null;
        try {
          fresh = await this.fetch();
        } catch (e) {
          if (outcome === 'unknown' && e instanceof UnreachableError) {
            throw new UnreachableError(`${e.message} (the ${spec.op} may or may not have landed: commit ${commit.slice(0, 12)}, Coord-Nonce ${nonce}; run the command again to find out)`);
          }
          throw e;
        }
        if (outcome === 'unknown' && fresh && (await this.isAncestor(commit, fresh))) {
          this.log.info({ op: spec.op, commit, pushAttempts }, 'push outcome was unknown; found our commit on the remote');
          return { result: plan.result, commit, pushAttempts };
        }
        tip = fresh;
        fromCache = false;
        this.log.debug({ op: spec.op, attempt, outcome }, 'push not accepted; re-running on fresh state');
        await this.backoff(attempt);
      }
      throw new OperationError(
        `${spec.op}: gave up after ${pushAttempts} push attempts in ${Math.round((Date.now() - started) / 100) / 10} s: main on ${this.remote} kept moving; nothing was changed, try again`,
      );
    });
  }
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.replace(/^(fatal|error|remote): /, '').trim())
      .find((l) => l.length > 0) ?? 'no output'
  );
}

export { PreconditionError };
