// `buildcoord init` and `buildcoord validate`.

import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Argv } from 'yargs';
import { EXIT, UsageError } from '../errors.js';
import { parseName } from '../model/input.js';
import { formatProblem, parseAndValidate, schemaNameFor } from '../model/validate.js';
import { PATHS } from '../model/types.js';
import { ensureBareRepo, initLayout } from '../store/layout.js';
import type { Handler } from './cmd-jobs.js';

async function walk(dir: string, root = dir, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === '.git' || e.name === 'node_modules') continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) await walk(full, root, out);
    else if (e.isFile()) out.push(relative(root, full).split(sep).join('/'));
  }
  return out;
}

/** All problems in a set of files, as `FILE: /pointer: message` lines. */
/**
 * Files every coordination repository has (`init` writes them). The commands
 * read a missing one as empty, so a deletion pushed by hand would silently
 * drop every job, lock or message in it: validate (and the pre-commit hook) says so.
 */
const REQUIRED = [PATHS.jobs, PATHS.locks, PATHS.messages, PATHS.buildConfig];

export function problemsIn(files: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const path of REQUIRED) if (!files.has(path)) lines.push(`${path}: /: missing: every coordination repository has it (\`buildcoord init\` creates it); deleting it would drop everything it held`);
  for (const [path, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    lines.push(...parseAndValidate(path, text).problems.map(formatProblem));
  }
  return lines;
}

export function registerRepoCommands(y: Argv, handler: Handler): Argv {
  return y
    .command(
      'init',
      'Create a coordination repository (a new bare repository at a path, or an existing empty remote)',
      (a) =>
        a
          .option('builders', { type: 'string', array: true, default: ['build1', 'build2'], describe: 'Builders to create status files for' })
          .example('$0 init --repo /srv/git/coordination.git', 'a new bare repository on this host')
          .example('$0 init --repo ssh://git@example.org/fleet/coordination.git', 'an empty remote you created'),
      handler(async (ctx, argv) => {
        const builders = (argv.builders as string[]).map((b) => parseName(b, '--builders'));
        const repo = ctx.configuredRepo;
        if (repo && !/^[a-z][a-z0-9+.-]*:\/\//i.test(repo) && !/^[^/]+@[^/]+:/.test(repo)) await ensureBareRepo(repo);
        else if (repo?.startsWith('file://')) await ensureBareRepo(decodeURIComponent(new URL(repo).pathname));
        const store = await ctx.store();
        const { result, commit } = await initLayout(store, builders, ctx.io.clock);
        if (ctx.args.json) ctx.json({ repo: store.remote, result, commit });
        else ctx.io.out(result === 'created' ? `initialized ${store.remote} (${commit?.slice(0, 12)})\n` : `${store.remote} is already a coordination repository; nothing changed\n`);
      }),
    )
    .command(
      'validate [dir]',
      'Check every coordination file against its schema (a checkout, or the remote main); exit 0 or 2',
      (a) =>
        a
          .positional('dir', { type: 'string', describe: 'A checkout of the coordination repository (default: the remote main)' })
          .example('$0 validate .', 'check your edits before pushing')
          .example('git config core.hooksPath .githooks', 'in a checkout: run validate before every commit'),
      handler(async (ctx, argv) => {
        const files = new Map<string, string>();
        let where: string;
        if (argv.dir !== undefined) {
          const dir = String(argv.dir);
          let paths: string[];
          try {
            paths = await walk(dir);
          } catch (e) {
            throw new UsageError(`${dir}: cannot read directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
          }
          for (const p of paths) if (schemaNameFor(p)) files.set(p, await readFile(join(dir, p), 'utf8'));
          where = dir;
        } else {
          const store = await ctx.store();
          const snap = await store.snapshot((p) => schemaNameFor(p) !== null);
          for (const [p, b] of snap.files) files.set(p, b.toString('utf8'));
          where = `${store.remote} main ${snap.commit?.slice(0, 12) ?? '(empty)'}`;
        }
        const problems = problemsIn(files);
        if (ctx.args.json) ctx.json({ checked: files.size, problems });
        else if (problems.length) ctx.io.err(problems.join('\n') + '\n');
        else ctx.io.out(`${files.size} files valid (${where})\n`);
        if (problems.length) ctx.exitCode = EXIT.usage;
      }),
    );
}
