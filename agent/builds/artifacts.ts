// Where a successful build leaves what it made: <artifacts_dir>/<builder>/<type>/<timestamp>/,
// each file with its size and sha256 for the manifest.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';

export const DEFAULT_ARTIFACTS_DIR = '/root/artifacts';

export interface Artifact {
  name: string;
  /** Absolute path on the builder. */
  path: string;
  size: number;
  sha256: string;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('error', reject)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** 20261123T101500Z: sorts by time and needs no quoting anywhere. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

/** A new directory for one build's artifacts; a second build in the same second gets a suffix, never a shared directory. */
export async function artifactDir(base: string, builder: string, type: string, at: Date): Promise<string> {
  const parent = join(base, builder.replace(/[^A-Za-z0-9._-]/g, '_') || hostname(), type);
  await mkdir(parent, { recursive: true });
  const name = stamp(at);
  for (let i = 0; ; i++) {
    const dir = join(parent, i === 0 ? name : `${name}.${i}`);
    try {
      await mkdir(dir);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || i > 1000) throw e;
    }
  }
}

/** Copies the files into dir (names must be distinct) and describes each. */
export async function collect(files: string[], dir: string): Promise<Artifact[]> {
  const out: Artifact[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    let name = basename(file);
    // Two modules can both make app.jar: keep both.
    for (let i = 1; seen.has(name); i++) name = `${i}-${basename(file)}`;
    seen.add(name);
    const dest = join(dir, name);
    await copyFile(file, dest);
    const st = await stat(dest);
    out.push({ name, path: dest, size: st.size, sha256: await sha256File(dest) });
  }
  return out;
}

/** Regular files directly in dir whose names match, sorted; none if dir does not exist. */
export async function filesIn(dir: string, match: (name: string) => boolean): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && match(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}
