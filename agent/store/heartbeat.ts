// Heartbeats live off main: each builder force-updates its own branch
// heartbeat/<builder> with one parentless commit holding
// <builder>/heartbeat.json, pushed with a lease on the sha it wrote last. The
// branch is always a single commit, and main never sees a heartbeat.

import { OperationError } from '../errors.js';
import { canonicalJson } from '../model/canonical.js';
import { PATHS, type HeartbeatFile } from '../model/types.js';
import { formatProblem, parseAndValidate, schemaFor, validateDoc } from '../model/validate.js';
import { commitBody, parseTree, writeLooseObject } from './git.js';
import type { Store } from './store.js';
import { applyChanges } from './tree.js';

export const heartbeatRef = (builder: string) => `refs/heads/heartbeat/${builder}`;

export class HeartbeatWriter {
  /** The sha we pushed last: the lease for the next force-push. undefined = not known yet. */
  private last: string | null | undefined = undefined;
  constructor(
    private readonly store: Store,
    readonly builder: string,
  ) {}

  private async remoteSha(ref: string): Promise<string | null> {
    const i = await this.store.internals();
    const r = await i.git(i.cloneDir, ['ls-remote', 'origin', ref], { timeoutMs: i.netTimeout });
    if (r.exitCode !== 0) throw i.classify(r.stderr, 'ls-remote');
    const sha = r.stdout.split('\t')[0]?.trim();
    return sha && /^[0-9a-f]{40}$/.test(sha) ? sha : null;
  }

  /** Writes one heartbeat; returns the new commit. */
  async write(doc: HeartbeatFile): Promise<string> {
    const path = PATHS.heartbeat(this.builder);
    const problems = validateDoc(path, doc);
    if (problems.length) throw new Error(`refusing to write an invalid heartbeat: ${problems.map(formatProblem).join('; ')}`);
    const i = await this.store.internals();
    const ref = heartbeatRef(this.builder);
    const tree = await applyChanges(i.cloneDir, i.reader, null, new Map([[path, Buffer.from(canonicalJson(doc, schemaFor(path)))]]));
    const commit = await writeLooseObject(
      i.cloneDir,
      'commit',
      commitBody(tree, [], i.identity, i.clock(), `heartbeat ${this.builder}\n\nCoord-Op: heartbeat\nCoord-Builder: ${this.builder}\n`),
    );
    if (this.last === undefined) this.last = await this.remoteSha(ref);
    for (let attempt = 0; attempt < 2; attempt++) {
      const lease = `--force-with-lease=${ref}:${this.last ?? ''}`;
      const r = await i.git(i.cloneDir, ['push', '--porcelain', '--no-verify', lease, 'origin', `${commit}:${ref}`], { timeoutMs: i.netTimeout });
      const status = r.stdout.split('\n').find((l) => l.includes(`:${ref}\t`));
      if (r.exitCode === 0 && status && !status.startsWith('!')) {
        this.last = commit;
        return commit;
      }
      if (!status) throw i.classify(r.stderr, 'push heartbeat to');
      // Someone else moved our branch (a second agent with our name, or a squash):
      // learn its sha and try once more; a person's squash is fine to overwrite.
      this.last = await this.remoteSha(ref);
    }
    throw new OperationError(`heartbeat branch ${ref} keeps changing under us: is a second agent running as ${this.builder}?`);
  }
}

export interface SeenHeartbeat {
  builder: string;
  sha: string;
  doc: HeartbeatFile | null;
  problem: string | null;
}

/** Every builder's readable heartbeat, by builder (one that cannot be read is left out). */
export async function heartbeatsByBuilder(store: Store): Promise<Map<string, HeartbeatFile>> {
  const out = new Map<string, HeartbeatFile>();
  for (const h of await readHeartbeats(store)) if (h.doc) out.set(h.builder, h.doc);
  return out;
}

/** Fetches every builder's heartbeat branch and reads its heartbeat.json. */
export async function readHeartbeats(store: Store): Promise<SeenHeartbeat[]> {
  const i = await store.internals();
  const f = await i.git(i.cloneDir, ['fetch', '--quiet', '--no-tags', '--prune', '--no-write-fetch-head', 'origin', '+refs/heads/heartbeat/*:refs/remotes/origin/heartbeat/*'], {
    timeoutMs: i.netTimeout,
  });
  if (f.exitCode !== 0) throw i.classify(f.stderr, 'fetch heartbeats from');
  const refs = await i.git(i.cloneDir, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/remotes/origin/heartbeat/']);
  const out: SeenHeartbeat[] = [];
  for (const line of refs.stdout.split('\n').filter(Boolean)) {
    const [sha, name] = line.split(' ');
    const builder = name!.slice('refs/remotes/origin/heartbeat/'.length);
    const path = PATHS.heartbeat(builder);
    const obj = await i.reader.read(`${sha}:${path}`);
    if (!obj) {
      out.push({ builder, sha: sha!, doc: null, problem: `${path}: missing on heartbeat/${builder}` });
      continue;
    }
    const { doc, problems } = parseAndValidate(path, obj.data.toString('utf8'));
    out.push({ builder, sha: sha!, doc: problems.length ? null : (doc as HeartbeatFile), problem: problems.length ? formatProblem(problems[0]!) : null });
  }
  return out;
}

/**
 * Squashes a heartbeat branch that has history into one parentless commit with
 * the same tree, optionally keeping the old tip under refs/backup/.
 */
export async function squashBranch(store: Store, branch: string, backup: boolean): Promise<{ before: string; after: string; commits: number; backupRef: string | null }> {
  const i = await store.internals();
  const ref = `refs/heads/${branch}`;
  const f = await i.git(i.cloneDir, ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', 'origin', `+${ref}:refs/remotes/origin/${branch}`], { timeoutMs: i.netTimeout });
  if (f.exitCode !== 0) {
    if (/couldn't find remote ref/i.test(f.stderr)) throw new OperationError(`no branch ${branch} on the remote`);
    throw i.classify(f.stderr, 'fetch');
  }
  const before = (await i.git(i.cloneDir, ['rev-parse', `refs/remotes/origin/${branch}`])).stdout.trim();
  const commits = Number((await i.git(i.cloneDir, ['rev-list', '--count', before])).stdout.trim());
  const head = await i.reader.read(before);
  if (!head || head.type !== 'commit') throw new OperationError(`${branch} does not point at a commit`);
  const tree = /^tree ([0-9a-f]{40})/.exec(head.data.toString('utf8'))![1]!;
  if (commits <= 1 && !/\nparent /.test(head.data.toString('utf8'))) return { before, after: before, commits, backupRef: null };
  const treeObj = await i.reader.read(tree);
  if (!treeObj) throw new OperationError(`tree of ${branch} is missing`);
  parseTree(treeObj.data); // a sanity read: the tree is intact before we drop history
  const after = await writeLooseObject(i.cloneDir, 'commit', commitBody(tree, [], i.identity, i.clock(), `squash ${branch}\n\nCoord-Op: heartbeat-squash\n`));
  const args = ['push', '--porcelain', '--no-verify', `--force-with-lease=${ref}:${before}`, 'origin', `${after}:${ref}`];
  let backupRef: string | null = null;
  if (backup) {
    backupRef = `refs/backup/${branch}/${i.clock().toISOString().replace(/[-:.]/g, '')}`;
    args.push(`${before}:${backupRef}`);
  }
  const r = await i.git(i.cloneDir, ['push', '--atomic', ...args.slice(1)], { timeoutMs: i.netTimeout });
  if (r.exitCode !== 0) {
    if (/stale info|rejected/.test(r.stdout + r.stderr)) throw new OperationError(`${branch} moved while squashing; run it again`);
    throw i.classify(r.stderr, 'push');
  }
  return { before, after, commits, backupRef };
}
