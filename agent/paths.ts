// Where things live on disk. The only module that knows the package layout.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null;

/** The installed package's root (the directory holding package.json, schemas/, coordination/). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the buildcoord package root (package.json beside schemas/)');
    dir = up;
  }
}

export function agentVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** BUILDCOORD_HOME, else the XDG data directory: private clones and the embedded repository live here. */
export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BUILDCOORD_HOME) return env.BUILDCOORD_HOME;
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'buildcoord');
}

export function embeddedRepo(home: string): string {
  return join(home, 'coordination.git');
}
