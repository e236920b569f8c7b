// Where a successful build leaves what it made: <artifacts_dir>/<builder>/<type>/<timestamp>/,
// each file with its size and sha256 for the manifest.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { GitRunner } from '../store/git.js';

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

// ---------------------------------------------------------------------------
// What a make build made. make has no artifact convention, so the build's
// products are found the way a person would: files in the checkout that git
// does not track (ignored ones too: build/ is usually in .gitignore) and that
// are what people ship. Object files, dependency files and logs are not.

/** At most this many files from one make build; more are left out with a note. */
export const MAX_MADE_FILES = 200;

const PACKAGE_NAME = /\.(deb|rpm|jar|war|zip|tgz|tar|tar\.(gz|xz|bz2|zst))$/;

/**
 * Whether a file made by a build is an artifact, from its name and first bytes:
 * an ELF executable or shared library (not a relocatable .o), a static library
 * (ar archive), or a package or archive by its extension.
 */
export function isShippable(name: string, head: Buffer): boolean {
  if (PACKAGE_NAME.test(name)) return true;
  if (head.length >= 8 && head.subarray(0, 8).toString('latin1') === '!<arch>\n') return true;
  if (head.length >= 18 && head[0] === 0x7f && head.subarray(1, 4).toString('latin1') === 'ELF') {
    // e_type at offset 16, in the byte order EI_DATA (offset 5) names: 2 executable, 3 shared object or PIE.
    const type = head[5] === 2 ? head.readUInt16BE(16) : head.readUInt16LE(16);
    return type === 2 || type === 3;
  }
  return false;
}

/** The shippable files a build left in a git checkout, sorted; `left` counts those over the limit. */
export async function madeFiles(dir: string, git: GitRunner, limit = MAX_MADE_FILES): Promise<{ files: string[]; left: number }> {
  const r = await git(join(dir, '.git'), ['--work-tree', dir, '-C', dir, 'ls-files', '--others', '-z']);
  if (r.exitCode !== 0) throw new Error(`git ls-files in ${dir}: ${r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`}`);
  const found: string[] = [];
  for (const rel of r.stdout.split('\0').filter(Boolean).sort()) {
    const path = join(dir, rel);
    const fh = await open(path, 'r').catch(() => null);
    if (!fh) continue;
    try {
      if (!(await fh.stat()).isFile()) continue;
      const head = Buffer.alloc(20);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      if (isShippable(basename(rel), head.subarray(0, bytesRead))) found.push(path);
    } finally {
      await fh.close();
    }
  }
  return { files: found.slice(0, limit), left: Math.max(0, found.length - limit) };
}
