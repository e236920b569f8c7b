// Creating a coordination repository: the layout shipped in this package
// (schemas/, coordination/, shared/) plus a status file per builder and a
// pre-commit hook people can turn on in their own checkout.

import { readdir, readFile, stat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnGit, type GitRunner } from './git.js';
import { OperationError, UsageError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { NAME_RE } from '../model/input.js';
import { NOT_BUILDER_DIRS, PATHS, type StatusFile } from '../model/types.js';
import type { Store, TxOutcome, TxView } from './store.js';

export const PRE_COMMIT_HOOK = `#!/bin/sh
# Validates the coordination files about to be committed (the staged versions).
# Turn it on in your checkout with:  git config core.hooksPath .githooks
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git checkout-index -a --prefix="$tmp/"
exec buildcoord validate "$tmp"
`;

const README = `# Coordination repository (buildcoord)

Managed by buildcoord: the queue, locks, messages and builder status as JSON.
Every file names its JSON Schema in "$schema" (see schemas/), so an editor
validates a hand edit. Before pushing a hand edit, run \`buildcoord validate .\`
or turn on the hook once: \`git config core.hooksPath .githooks\`.

Never merge or rebase changes to these files; if a push is rejected, fetch,
reset to origin/main and make the edit again (buildcoord does exactly that).
`;

export function statusFor(builder: string, now: Date): StatusFile {
  return {
    $schema: '../schemas/status.schema.json',
    server: builder,
    timestamp: now.toISOString(),
    status: 'idle',
    current_job: null,
    last_build: null,
    system: { cpu_usage: null, memory_used_gb: null, disk_free_gb: null },
  };
}

/** The files of a new coordination repository. */
export async function layoutFiles(
  builders: string[],
  now: Date,
): Promise<{ json: Record<string, unknown>; raw: Record<string, string | { data: string; exec: true }> }> {
  const root = packageRoot();
  const json: Record<string, unknown> = {};
  const raw: Record<string, string | { data: string; exec: true }> = {};
  for (const name of await readdir(join(root, 'schemas'))) {
    if (name.endsWith('.schema.json')) raw[`schemas/${name}`] = await readFile(join(root, 'schemas', name), 'utf8');
  }
  for (const path of [PATHS.jobs, PATHS.locks, PATHS.messages, PATHS.buildConfig, PATHS.dashboard]) {
    json[path] = JSON.parse(await readFile(join(root, path), 'utf8'));
  }
  for (const b of builders) json[PATHS.status(b)] = statusFor(b, now);
  raw['.githooks/pre-commit'] = { data: PRE_COMMIT_HOOK, exec: true };
  raw['README.md'] = README;
  return { json, raw };
}

/** Makes a bare repository at a local path when there is none yet. */
export async function ensureBareRepo(path: string, git: GitRunner = spawnGit): Promise<boolean> {
  try {
    await stat(join(path, 'HEAD'));
    return false;
  } catch {
    /* create it */
  }
  try {
    const entries = await readdir(path);
    if (entries.length > 0) throw new UsageError(`${path} exists and is not an empty directory or a bare git repository`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
  }
  await mkdir(path, { recursive: true });
  const r = await git(null, ['init', '--quiet', '--bare', '-b', 'main', path]);
  if (r.exitCode !== 0) throw new OperationError(`git init --bare ${path} failed: ${r.stderr.trim()}`);
  return true;
}

export async function initLayout(store: Store, builders: string[], clock: () => Date = () => new Date()): Promise<TxOutcome<'created' | 'exists'>> {
  const files = await layoutFiles(builders, clock());
  return store.transact({
    op: 'init',
    reads: [PATHS.jobs],
    mutate: (view) => {
      if (view.commit) {
        if (view.get(PATHS.jobs) !== undefined) return { result: 'exists' as const };
        throw new OperationError(`${store.remote} already has a main branch that is not a coordination repository; init needs an empty repository`);
      }
      return { result: 'created' as const, writes: files.json, raw: files.raw, message: `init coordination repository (builders: ${builders.join(', ')})` };
    },
  });
}

/** The listing of main's root, as a read (TxView.list). */
export const ROOT = '/';

/** Builder directories on main (the view must have read ROOT). */
export function builderDirs(view: TxView): string[] {
  return view.dirs(ROOT).filter((n) => NAME_RE.test(n) && !NOT_BUILDER_DIRS.has(n));
}
