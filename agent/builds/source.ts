// A job's source at exactly its commit: one cached bare mirror per source
// URL, and a clean workspace checked out from it for every attempt. A commit
// that is not on the job's branch is refused before anything runs.

import { createHash } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { OperationError } from '../errors.js';
import { spawnGit, type GitRunner } from '../store/git.js';

export interface Checkout {
  dir: string;
  commit: string;
}

function cacheName(source: string): string {
  const base = (source.replace(/\.git\/?$/, '').split(/[/:]/).filter(Boolean).pop() ?? 'src').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40);
  return `${base}-${createHash('sha256').update(source).digest('hex').slice(0, 10)}.git`;
}

async function ok(git: GitRunner, dir: string | null, args: string[], step: string, timeoutMs = 600_000): Promise<string> {
  const r = await git(dir, args, { timeoutMs });
  if (r.exitCode !== 0) throw new OperationError(`${step}: ${r.stderr.trim().split('\n').pop() || `git exited ${r.exitCode}`}`);
  return r.stdout.trim();
}

/**
 * Fetches `branch` of `source` into the cache and checks out `commit` (or the
 * branch head) into a fresh `workspace`. Arguments were validated at enqueue
 * time and are passed as separate argv entries after `--` where git allows,
 * so nothing in them is ever read as an option or by a shell.
 */
export async function checkout(
  cacheDir: string,
  source: string,
  branch: string,
  commit: string | null,
  workspace: string,
  git: GitRunner = spawnGit,
): Promise<Checkout> {
  if (source.startsWith('-')) throw new OperationError(`source ${JSON.stringify(source)} is not a git URL or path`);
  const mirror = join(cacheDir, cacheName(source));
  try {
    await stat(join(mirror, 'HEAD'));
  } catch {
    await mkdir(mirror, { recursive: true });
    await ok(git, mirror, ['init', '--quiet', '--bare'], 'create source cache');
  }
  await ok(git, mirror, ['fetch', '--quiet', '--no-tags', '--', source, `+refs/heads/${branch}:refs/heads/${branch}`], `fetch branch ${branch} of ${source}`);
  const head = await ok(git, mirror, ['rev-parse', '--verify', `refs/heads/${branch}^{commit}`], `resolve ${branch}`);
  let target = head;
  if (commit) {
    const full = await git(mirror, ['rev-parse', '--verify', '--quiet', `${commit}^{commit}`]);
    if (full.exitCode !== 0) throw new OperationError(`commit ${commit} is not in ${source} (branch ${branch})`);
    target = full.stdout.trim();
    const onBranch = await git(mirror, ['merge-base', '--is-ancestor', target, head]);
    if (onBranch.exitCode !== 0) throw new OperationError(`commit ${commit} is not on branch ${branch} of ${source}: refusing to build it`);
  }
  await rm(workspace, { recursive: true, force: true });
  await mkdir(workspace, { recursive: true });
  // A clean tree at exactly that commit, sharing the cache's objects.
  await ok(git, null, ['clone', '--quiet', '--shared', '--no-checkout', mirror, workspace], 'create workspace');
  await ok(git, join(workspace, '.git'), ['--work-tree', workspace, 'checkout', '--quiet', '--detach', target], `check out ${target.slice(0, 12)}`);
  return { dir: workspace, commit: target };
}
