// `buildcoord agent` (the daemon, in the foreground for systemd/OpenRC) and
// `buildcoord heartbeat squash`.

import { join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { loadConfigFile, type FileConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { parseCount, parseDuration, parseLabel, parseName } from '../model/input.js';
import { agentVersion } from '../paths.js';
import type { AgentSettings } from '../daemon/agent.js';
import { parseDistccHosts } from '../builds/distcc.js';
import { squashBranch } from '../store/heartbeat.js';
import type { Handler } from './cmd-jobs.js';
import type { Context } from './context.js';

const DEFAULTS = { poll: '10s', heartbeat: '60s', lease: '5m', grace: '10m', concurrency: 1, maxReclaims: 3 };

/** Flags over environment over config file over defaults, each checked with the flag's name in the error. */
export function resolveSettings(argv: Record<string, unknown>, env: NodeJS.ProcessEnv, file: FileConfig, home: string): AgentSettings {
  const pick = (flag: string, envName: string, fileValue: unknown, fallback: unknown): [unknown, string] => {
    if (argv[flag] !== undefined) return [argv[flag], `--${flag}`];
    if (env[envName] !== undefined && env[envName] !== '') return [env[envName], envName];
    if (fileValue !== undefined) return [fileValue, `config "${flag.replace(/-/g, '_')}"`];
    return [fallback, `--${flag}`];
  };
  const dur = (flag: string, envName: string, fileValue: string | undefined, fallback: string) => {
    const [v, from] = pick(flag, envName, fileValue, fallback);
    return parseDuration(v, from);
  };
  const [builderValue, builderFrom] = pick('builder', 'BUILDCOORD_BUILDER', file.builder, undefined);
  if (builderValue === undefined) throw new UsageError('--builder is required (or BUILDCOORD_BUILDER, or "builder" in the config file)');
  const builder = parseName(builderValue, builderFrom);
  const pollMs = dur('poll', 'BUILDCOORD_POLL', file.poll, DEFAULTS.poll);
  const heartbeatMs = dur('heartbeat', 'BUILDCOORD_HEARTBEAT', file.heartbeat, DEFAULTS.heartbeat);
  const leaseMs = dur('lease', 'BUILDCOORD_LEASE', file.lease, DEFAULTS.lease);
  const graceMs = dur('grace', 'BUILDCOORD_GRACE', file.grace, DEFAULTS.grace);
  if (heartbeatMs * 2 > leaseMs) throw new UsageError(`--lease ${leaseMs} ms must be at least twice --heartbeat ${heartbeatMs} ms: the heartbeat renews the lease`);
  const [c, cFrom] = pick('concurrency', 'BUILDCOORD_CONCURRENCY', file.concurrency, DEFAULTS.concurrency);
  const [m, mFrom] = pick('max-reclaims', 'BUILDCOORD_MAX_RECLAIMS', file.max_reclaims, DEFAULTS.maxReclaims);
  let labels: Record<string, string> = { ...(file.labels ?? {}) };
  const labelArgs = argv.label !== undefined ? (Array.isArray(argv.label) ? argv.label : [argv.label]) : env.BUILDCOORD_LABELS ? env.BUILDCOORD_LABELS.split(',').filter(Boolean) : null;
  if (labelArgs) labels = Object.fromEntries(labelArgs.map((l) => parseLabel(l)));
  // Build settings reach the executor through the config it is given; the
  // file's own object is kept when nothing overrides it.
  let config: FileConfig = file;
  const [hosts, hostsFrom] = pick('distcc-hosts', 'BUILDCOORD_DISTCC_HOSTS', file.distcc_hosts, undefined);
  if (hosts !== undefined) {
    if (typeof hosts !== 'string') throw new UsageError(`${hostsFrom}: expected DISTCC_HOSTS text such as "127.0.0.1:3632/4,lzo"`);
    try {
      parseDistccHosts(hosts);
    } catch (e) {
      throw new UsageError(`${hostsFrom}: ${(e as Error).message}`);
    }
    if (hosts.trim() !== file.distcc_hosts) config = { ...config, distcc_hosts: hosts.trim() };
  }
  const [artifacts, artifactsFrom] = pick('artifacts-dir', 'BUILDCOORD_ARTIFACTS_DIR', file.artifacts_dir, undefined);
  if (artifacts !== undefined) {
    if (typeof artifacts !== 'string' || artifacts.trim() === '') throw new UsageError(`${artifactsFrom}: expected a directory`);
    if (resolve(artifacts) !== file.artifacts_dir) config = { ...config, artifacts_dir: resolve(artifacts) };
  }
  return {
    builder,
    pollMs,
    heartbeatMs,
    leaseMs,
    graceMs,
    concurrency: parseCount(c, cFrom, 1, 64),
    maxReclaims: parseCount(m, mFrom, 1, 100),
    labels,
    workDir: join(home, 'agents', builder),
    home,
    config,
    version: agentVersion(),
  };
}

export function registerAgentCommands(y: Argv, handler: Handler): Argv {
  return y
    .command(
      'agent',
      'Run the builder daemon in the foreground (systemd and OpenRC supervise it)',
      (a) =>
        a
          .option('poll', { type: 'string', describe: 'How often to look for work (ls-remote), e.g. 10s' })
          .option('heartbeat', { type: 'string', describe: 'Heartbeat interval, e.g. 60s; also renews leases' })
          .option('lease', { type: 'string', describe: 'How long a claim holds without a heartbeat, e.g. 5m' })
          .option('grace', { type: 'string', describe: 'On SIGTERM, how long a running job may go on before it is stopped and handed back' })
          .option('concurrency', { type: 'string', describe: 'Jobs at once (default 1)' })
          .option('label', { type: 'string', array: true, describe: "This builder's labels, key=value (repeatable)" })
          .option('distcc-hosts', { type: 'string', describe: 'distcc hosts for make jobs, DISTCC_HOSTS syntax, e.g. "10.0.0.2:3632/8,lzo"; add ,lzo,cpp for pump mode (default: BUILDCOORD_DISTCC_HOSTS or the config file)' })
          .option('artifacts-dir', { type: 'string', describe: 'Where builds leave artifacts, as DIR/<builder>/<type>/<timestamp>/ (default: BUILDCOORD_ARTIFACTS_DIR, the config file, else /root/artifacts)' })
          .option('max-reclaims', { type: 'string', describe: 'A job taken back from silent builders more often than this fails (default 3)' })
          .option('log-level', { type: 'string', choices: ['trace', 'debug', 'info', 'warn', 'error'], describe: 'Log level (default info)' })
          .example('$0 agent --builder build1 --repo ssh://git@git.example.org/fleet/coordination.git', 'run builder build1')
          .example('$0 agent --config /etc/buildcoord/agent.json', 'everything from the config file')
          .example('$0 agent --builder t1 --poll 500ms --heartbeat 1s --lease 5s', 'fast intervals for a test'),
      handler(async (ctx, argv) => runAgent(ctx, argv)),
    )
    .command('heartbeat', 'Heartbeat branch maintenance', (h) =>
      h
        .command(
          'squash',
          'Squash a heartbeat branch with history into one parentless commit',
          (a) =>
            a
              .option('branch', { type: 'string', describe: 'Branch (default heartbeat/<builder>)' })
              .option('backup', { type: 'boolean', describe: 'Keep the old tip under refs/backup/<branch>/<time>' })
              .example('$0 heartbeat squash --builder build1 --backup', ''),
          handler(async (ctx, argv) => {
            const branch = argv.branch === undefined ? `heartbeat/${ctx.requireBuilder()}` : String(argv.branch);
            if (!/^heartbeat\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(branch)) throw new UsageError(`--branch ${JSON.stringify(branch)}: expected heartbeat/<builder>`);
            const r = await squashBranch(await ctx.store(), branch, Boolean(argv.backup));
            if (ctx.args.json) ctx.json({ branch, ...r });
            else if (r.before === r.after) ctx.io.out(`${branch} is already a single commit; nothing changed\n`);
            else ctx.io.out(`${branch}: ${r.commits} commits squashed into ${r.after.slice(0, 12)}${r.backupRef ? `; old tip kept as ${r.backupRef}` : ''}\n`);
          }),
        )
        .example('$0 heartbeat squash --branch heartbeat/build1 --backup', 'one commit again, the old history kept under a backup ref')
        .demandCommand(1, 'name a heartbeat command: squash'),
    );
}

async function runAgent(ctx: Context, argv: Record<string, unknown>): Promise<void> {
  // Loaded here, not at start-up: every other command would pay for the daemon's modules.
  const [{ pino }, { Agent }] = await Promise.all([import('pino'), import('../daemon/agent.js')]);
  const settings = resolveSettings(argv, ctx.io.env, ctx.config, ctx.home);
  const level = (argv['log-level'] as string | undefined) ?? ctx.io.env.BUILDCOORD_LOG_LEVEL ?? ctx.config.log_level ?? 'info';
  // JSON lines for journald; a person at a terminal gets them pretty.
  const log = process.stdout.isTTY
    ? pino({ level, base: { builder: settings.builder } }, pino.transport({ target: 'pino-pretty', options: { colorize: true } }))
    : pino({ level, base: { builder: settings.builder } });
  const store = await ctx.store();
  const agent = new Agent(settings, { store, log, clock: ctx.io.clock });
  let stopping: Promise<void> | null = null;
  const stop = (sig: string) => {
    log.info({ signal: sig }, 'signal: draining');
    stopping ??= agent.drain();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      const file = loadConfigFile(ctx.args.config, ctx.io.env).config;
      agent.reload(resolveSettings(argv, ctx.io.env, file, ctx.home));
    } catch (e) {
      log.error({ err: (e as Error).message }, 'config reload refused; keeping the old settings');
    }
  });
  await agent.start();
  // Runs until a signal drains it.
  await new Promise<void>((resolve) => {
    const wait = setInterval(() => {
      if (stopping) {
        clearInterval(wait);
        void stopping.then(resolve);
      }
    }, 50);
  });
  log.flush?.();
  // Drained and offline: nothing may keep a stopped daemon alive (a stray timer,
  // a child's pipe). Give the event loop a moment to empty, then leave.
  setTimeout(() => process.exit(0), 2000).unref();
}
