// The yargs parser, built from its dependencies so tests can run it in-process
// (parseAsync) with their own output, environment and clock.

import yargs, { type Argv } from 'yargs';
import { CoordError, EXIT, UsageError } from '../errors.js';
import { agentVersion } from '../paths.js';
import { registerJobCommands, type Handler } from './cmd-jobs.js';
import { registerRepoCommands } from './cmd-repo.js';
import { Context, type GlobalArgs, type Io } from './context.js';

export const EXIT_CODES_HELP = `Exit codes: 0 ok, 1 operation failed (e.g. lock held, job already finished, invalid file in the repository), 2 usage or invalid input, 3 remote unreachable, 4 permission denied.`;

export function buildCli(args: string[], io: Io): Argv {
  const handler: Handler = (run) => async (argv) => {
    const ctx = new Context(argv as GlobalArgs, io);
    try {
      await run(ctx, argv);
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
    .version(agentVersion())
    .strict()
    .recommendCommands()
    .completion('completion', 'Print a shell completion script (bash/zsh): buildcoord completion >> ~/.bashrc')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg ?? 'invalid arguments (see --help)');
    });
  y = registerRepoCommands(y, handler);
  y = registerJobCommands(y, handler);
  return y.demandCommand(1, 'name a command (see --help)').help().alias('h', 'help');
}

/** Runs the CLI; returns the exit code. The one place errors become a line and a code. */
export async function runCli(args: string[], io: Io): Promise<number> {
  const debug = args.includes('--debug');
  process.exitCode = undefined;
  try {
    await buildCli(args, io).parseAsync();
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
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
