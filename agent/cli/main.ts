#!/usr/bin/env node
// Entry point of the `buildcoord` command.

import { hideBin } from 'yargs/helpers';
import { runCli } from './app.js';

const code = await runCli(hideBin(process.argv), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  clock: () => new Date(),
});
process.exitCode = code;
