// The yargs parser, built from its dependencies so tests can run it in-process
// (parseAsync) with their own output, environment and clock.

import yargs, { type Argv } from 'yargs';
import { CoordError, EXIT, EXIT_CODES_HELP, UsageError } from '../errors.js';
import { agentVersion } from '../paths.js';
import { registerJobCommands, type Handler } from './cmd-jobs.js';
import { registerLockCommands } from './cmd-lock.js';
import { registerMsgCommands } from './cmd-msg.js';
import { registerRepoCommands } from './cmd-repo.js';
import { registerAgentCommands } from './cmd-agent.js';
import { registerFleetCommands } from './cmd-fleet.js';
import { registerDashboardCommands } from './cmd-dashboard.js';
import { registerLogsCommands } from './cmd-logs.js';
import { registerDoctorCommands } from './cmd-doctor.js';
import { Context, type GlobalArgs, type Io } from './context.js';

export { EXIT_CODES_HELP };

export function buildCli(args: string[], io: Io, outcome: { exitCode: number } = { exitCode: 0 }): Argv {
  const handler: Handler = (run) => async (argv) => {
    const ctx = new Context(argv as GlobalArgs, io);
    try {
      await run(ctx, argv);
      outcome.exitCode = ctx.exitCode;
    } finally {
      ctx.close();
    }
  };
  let y: Argv = yargs(args)
    .scriptName('buildcoord')
    .usage('$0 <command> [options]\n\nCoordinate build servers through one git repository of JSON files.')
    .option('repo', { type: 'string', global: true, describe: 'Coordination repository (URL or path); default: BUILDCOORD_REPO, the config file, else the embedded local one' })
    .option('builder', { type: 'string', global: true, describe: 'This builder\'s name (default: BUILDCOORD_BUILDER or the config file)' })
    .option('home', { type: 'string', global: true, describe: 'State directory (default: BUILDCOORD_HOME or ~/.local/share/buildcoord)' })
    .option('config', { type: 'string', global: true, describe: 'Config file (default: BUILDCOORD_CONFIG or /etc/buildcoord/agent.json)' })
    .option('json', { type: 'boolean', global: true, describe: 'Machine-readable output' })
    .option('debug', { type: 'boolean', global: true, describe: 'Stack traces on errors' })
    .epilogue(EXIT_CODES_HELP)
    .example('$0 job add --type make --source https://git.example.org/app.git --priority 1', 'queue a build')
    .example('$0 status', 'the fleet at a glance')
    .example('$0 agent --builder build1', 'run the builder daemon')
    .version(agentVersion())
    .strict()
    .recommendCommands()
    .completion('completion', 'Print a shell completion script (bash/zsh): buildcoord completion >> ~/.bashrc')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      // yargs spreads some messages over lines ("Invalid values:\n  Argument: status, ..."): one line.
      throw new UsageError((msg ?? 'invalid arguments (see --help)').replace(/\s*\n\s*/g, ' ').trim());
    });
  // Every command's help ends with the exit codes: yargs keeps an epilogue per
  // command, so each builder gets it added on its way in.
  const command = y.command.bind(y) as (...a: unknown[]) => Argv;
  (y as unknown as { command: (...a: unknown[]) => Argv }).command = (...a: unknown[]) => {
    const builder = a[2];
    if (typeof builder === 'function') {
      a[2] = (yy: Argv) => ((builder as (x: Argv) => Argv | void)(yy) ?? yy).epilogue(EXIT_CODES_HELP);
    }
    return command(...a);
  };
  y = registerRepoCommands(y, handler);
  y = registerJobCommands(y, handler);
  y = registerAgentCommands(y, handler);
  y = registerFleetCommands(y, handler);
  y = registerMsgCommands(y, handler);
  y = registerLockCommands(y, handler);
  y = registerDashboardCommands(y, handler);
  y = registerLogsCommands(y, handler);
  y = registerDoctorCommands(y, handler);
  return y.demandCommand(1, 'name a command (see --help)').help().alias('h', 'help');
}

/** Runs the CLI; returns the exit code. The one place errors become a line and a code. */
export async function runCli(args: string[], io: Io): Promise<number> {
  const debug = args.includes('--debug');
  // Per call, not process.exitCode: tests run several CLIs in one process.
  const outcome = { exitCode: EXIT.ok as number };
  try {
    // With a callback yargs hands help and version text to us instead of console.log.
    await buildCli(args, io, outcome).parseAsync(args, {}, (_err, _argv, output) => {
      if (output) io.out(output.endsWith('\n') ? output : `${output}\n`);
    });
    return outcome.exitCode;
  } catch (e) {
    if (e instanceof CoordError) {
      io.err(`buildcoord: ${e.message.split('\n')[0]}\n`);
      if (debug) io.err(`${e.stack}\n`);
      return e.exitCode;
    }
    const err = e as Error;
    io.err(`buildcoord: internal error: ${err?.message?.split('\n')[0] ?? String(e)}${debug ? '' : ' (run with --debug for details)'}\n`);
    if (debug) io.err(`${err?.stack}\n`);
    return EXIT.failed;
  }
}
