// `deb` jobs: the source's own packaging script when it has one
// (packaging/build-deb.sh -o OUTDIR, run as the executable it is, never
// through sh -c), else dpkg-buildpackage -us -uc -b, which writes its results
// into the PARENT of the source tree: the job's own directory.

import { lstat, mkdir, realpath, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { filesIn } from './artifacts.js';
import { failed, type StepContext, type StepOutcome } from './step.js';

export const PACKAGING_SCRIPT = 'packaging/build-deb.sh';

const isOutput = (n: string) => /\.(deb|udeb|ddeb|changes|buildinfo)$/.test(n);

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

export async function runDeb(ctx: StepContext): Promise<StepOutcome> {
  const script = join(ctx.dir, PACKAGING_SCRIPT);
  if (await exists(script)) {
    // A symlink out of the checkout would run something the commit does not contain.
    const real = await realpath(script);
    const root = await realpath(ctx.dir);
    if (relative(root, real).startsWith('..') || relative(root, real).startsWith(sep)) return failed(`${PACKAGING_SCRIPT} points outside the source tree: refused`);
    const st = await lstat(real);
    if (!st.isFile()) return failed(`${PACKAGING_SCRIPT} is not a regular file`);
    if ((st.mode & 0o111) === 0) return failed(`${PACKAGING_SCRIPT} is not executable (commit it with mode 755: git update-index --chmod=+x ${PACKAGING_SCRIPT})`);
    const out = join(ctx.base, 'deb-out');
    await rm(out, { recursive: true, force: true });
    await mkdir(out, { recursive: true });
    const r = await ctx.run('deb', real, ['-o', out]);
    if (r.aborted || r.exitCode !== 0 || r.timedOut) return failed(`${PACKAGING_SCRIPT} ${r.summary}`, r);
    const files = await filesIn(out, isOutput);
    if (!files.some((f) => f.endsWith('deb'))) return failed(`${PACKAGING_SCRIPT} ${r.summary} but left no .deb in its -o directory`, r);
    return { ok: true, summary: `${PACKAGING_SCRIPT} ${r.summary}`, exitCode: 0, files, mode: 'packaging-script' };
  }
  if (!(await exists(join(ctx.dir, 'debian', 'control')))) return failed(`nothing to package: the source has neither ${PACKAGING_SCRIPT} nor debian/control`);
  // Leftovers of an earlier run in this directory must not pass for this build's packages.
  for (const f of await filesIn(ctx.base, isOutput)) await rm(f, { force: true });
  const r = await ctx.run('deb', 'dpkg-buildpackage', ['-us', '-uc', '-b']);
  if (r.aborted || r.exitCode !== 0 || r.timedOut) return failed(`dpkg-buildpackage ${r.summary}`, r);
  const files = await filesIn(ctx.base, isOutput);
  if (!files.some((f) => f.endsWith('deb'))) return failed(`dpkg-buildpackage ${r.summary} but no .deb appeared next to the source tree`, r);
  return { ok: true, summary: `dpkg-buildpackage ${r.summary}`, exitCode: 0, files, mode: 'dpkg-buildpackage' };
}
