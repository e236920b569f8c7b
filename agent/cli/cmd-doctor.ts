// `buildcoord doctor` (is this builder ready?) and `buildcoord pump restore|status`
// (a pump mode whose include server really serves).

import type { Argv } from 'yargs';
import { EXIT } from '../errors.js';
import type { CheckRow } from '../doctor/doctor.js';
import { parseCount } from '../model/input.js';

import type { Handler } from './cmd-jobs.js';
import { clean, table } from './format.js';

const MARK: Record<CheckRow['status'], string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function registerDoctorCommands(y: Argv, handler: Handler): Argv {
  return y
    .command(
      'doctor',
      'Check everything this builder needs: remote, clone, lock, tools, disk, distcc hosts and pump mode. Exit 0 when nothing failed',
      (a) =>
        a
          .option('distcc-hosts', { type: 'string', describe: 'DISTCC_HOSTS to check (default: BUILDCOORD_DISTCC_HOSTS, else "distcc_hosts" in the config file)' })
          .option('artifacts-dir', { type: 'string', describe: 'Artifacts directory to check (default: BUILDCOORD_ARTIFACTS_DIR, else "artifacts_dir" in the config file)' })
          .option('max-commits-per-day', { type: 'number', default: 2000, describe: 'Warn when main grows faster than this (a sign of housekeeping commits on main)' })
          .option('strict', { type: 'boolean', default: false, describe: 'Warnings fail too (exit 1)' })
          .example('$0 doctor', 'one row per check; failing rows say what to do')
          .example('$0 doctor --distcc-hosts "10.0.0.2:3632/8,cpp,lzo" --json', '{"ok": ..., "checks": [{"id", "status", "detail", "fix"}]}'),
      handler(async (ctx, argv) => {
        const env = ctx.io.env;
        const maxPerDay = parseCount(argv['max-commits-per-day'], '--max-commits-per-day', 1, 10_000_000);
        const distccHosts = (argv['distcc-hosts'] as string | undefined) ?? (env.BUILDCOORD_DISTCC_HOSTS || undefined) ?? ctx.config.distcc_hosts ?? null;
        const artifactsDir = (argv['artifacts-dir'] as string | undefined) ?? (env.BUILDCOORD_ARTIFACTS_DIR || undefined) ?? ctx.config.artifacts_dir ?? null;
        const { runDoctor } = await import('../doctor/doctor.js');
        const report = await runDoctor({
          store: await ctx.store(),
          config: ctx.config,
          home: ctx.home,
          builder: ctx.builder,
          distccHosts,
          artifactsDir,
          env,
          clock: ctx.io.clock,
          maxCommitsPerDay: maxPerDay,
          strict: argv.strict === true,
        });
        if (!report.ok) ctx.exitCode = EXIT.failed;
        if (ctx.args.json) return ctx.json(report);
        ctx.io.out(table(['CHECK', 'RESULT', 'DETAIL'], report.checks.map((r) => [r.check, MARK[r.status], clean(r.detail, 200)])));
        const todo = report.checks.filter((r) => (r.status === 'fail' || r.status === 'warn') && r.fix);
        if (todo.length) {
          ctx.io.out('\nwhat to do:\n');
          for (const r of todo) ctx.io.out(`  ${r.check} (${MARK[r.status]}): ${r.fix}\n`);
        }
        const c = report.counts;
        ctx.io.out(`\n${report.ok ? 'ready' : 'NOT ready'}: ${c.ok} ok, ${c.warn} warning(s), ${c.fail} failed, ${c.skip} skipped\n`);
      }),
    )
    .command('pump', 'distcc pump mode: rebuild the include server for this Python and use it', (p) =>
      p
        .command(
          'restore',
          `Rebuild distcc's include server from source with patches/distcc/, install it under BUILDCOORD_HOME/pump/, verify a real pump compile, then switch pump builds to it. Steps: fetch source, unpack, patch, autogen, configure, make include-server, install, verify`,
          (a) =>
            a
              .option('source', { type: 'string', describe: 'distcc source directory or tarball (default: "distcc_source" in the config file)' })
              .option('patches', { type: 'string', describe: 'Directory of *.patch files (default: "distcc_patches" in the config file, else the package\'s patches/distcc/)' })
              .option('python', { type: 'string', describe: 'The Python distcc-pump runs (default /usr/bin/python3)' })
              .example('scripts/get-distcc-source.sh /var/cache/buildcoord/distcc-src', 'fetch the distcc 3.4 tarball from Debian\'s archive (prints its path)')
              .example('$0 pump restore --source /var/cache/buildcoord/distcc-src/distcc_3.4+really3.4.orig.tar.gz', 'rebuild, verify, switch')
              .epilogue(`A failed restore names its step and leaves the previous install (BUILDCOORD_HOME/pump/current) in use. The log of every run stays in BUILDCOORD_HOME/pump/restore-<timestamp>.log.`),
          handler(async (ctx, argv) => {
            const { restorePump } = await import('../builds/pump.js');
            const result = await restorePump({
              home: ctx.home,
              source: (argv.source as string | undefined) ?? ctx.config.distcc_source ?? null,
              patchesDir: (argv.patches as string | undefined) ?? ctx.config.distcc_patches ?? null,
              python: argv.python as string | undefined,
              env: ctx.io.env,
              clock: ctx.io.clock,
              progress: ctx.args.json ? undefined : (line) => ctx.io.err(`pump restore: ${line}\n`),
            });
            if (ctx.args.json) return ctx.json(result);
            ctx.io.out(
              [
                `restored: ${result.dir}`,
                `  pump builds now use ${result.pump}`,
                `  python ${result.python_version} (${result.python}); patches: ${result.patches.map((p) => `${p.name} (${p.result})`).join(', ') || 'none'}`,
                `  verified: ${result.verify.reason}`,
                `  previous: ${result.previous ?? 'none'}`,
                `  log: ${result.log} (${result.duration_seconds} s)`,
              ].join('\n') + '\n',
            );
          }),
        )
        .command(
          'status',
          'Which distcc-pump pump builds use: the restored one (BUILDCOORD_HOME/pump/current) or the distribution\'s',
          (a) => a.example('$0 pump status --json', '{"current": {...} | null}'),
          handler(async (ctx) => {
            const { pumpInstallInfo } = await import('../builds/pump.js');
            const info = await pumpInstallInfo(ctx.home);
            const configured = ctx.config.distcc_pump ?? null;
            if (ctx.args.json) return ctx.json({ current: info, configured_distcc_pump: configured });
            if (configured) ctx.io.out(`configured distcc_pump: ${configured} (takes precedence)\n`);
            if (!info) ctx.io.out(`no restored include server under ${ctx.home}/pump: pump builds use the distribution's distcc-pump (run \`buildcoord pump restore\`)\n`);
            else ctx.io.out(`current: ${info.dir}\n  distcc-pump: ${info.pump}\n  python: ${String(info.manifest?.python_version ?? '?')}  created: ${String(info.manifest?.created_at ?? '?')}\n`);
          }),
        )
        .example('$0 pump status', 'which include server pump builds use')
        .example('$0 pump restore', 'rebuild it for this Python from the configured distcc source')
        .demandCommand(1, 'name a pump command: restore or status'),
    );
}
