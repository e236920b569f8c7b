// The yargs parser in-process (agent/cli/app.ts runCli): help text, and
// malformed input that must end as exit 2 with one stderr line naming the
// flag, before anything reaches the coordination repository.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import path from 'node:path';
import { EXIT_CODES_HELP, runCli } from '../../agent/cli/app.js';
import type { Io } from '../../agent/cli/context.js';
import { cleanupAll, git, tmpDir } from '../helpers/git.js';

after(cleanupAll);

// git run by the CLI inherits this process's environment: keep a git hook's
// GIT_DIR (tests run from a pre-commit) or a BUILDCOORD_* from redirecting it.
for (const key of Object.keys(process.env)) if (key.startsWith('GIT_') || key.startsWith('BUILDCOORD_')) delete process.env[key];

const CLOCK = new Date('2025-06-01T12:00:00Z');

interface Run {
  code: number;
  out: string;
  err: string;
  /** What went to console.log / console.error instead of the Io (yargs' own output). */
  console: string;
}

let home = '';

/** runCli with output captured; console.log/error are intercepted too, to see what bypasses the Io. */
async function cli(args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  let con = '';
  const io: Io = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    env: { BUILDCOORD_HOME: home, USER: 'tester' },
    clock: () => new Date(CLOCK),
  };
  const { log, error } = console;
  console.log = (...a: unknown[]) => void (con += a.map(String).join(' ') + '\n');
  console.error = (...a: unknown[]) => void (con += a.map(String).join(' ') + '\n');
  const exitCodeBefore = process.exitCode;
  let code: number;
  try {
    code = await runCli(args, io);
  } finally {
    console.log = log;
    console.error = error;
    // runCli resets and validate sets process.exitCode; this process is the test runner's.
    process.exitCode = exitCodeBefore;
  }
  return { code, out, err, console: con };
}

const flat = (s: string) => s.replace(/\s+/g, ' ');

before(async () => {
  home = await tmpDir('cli-parse-home-');
});

describe('--help', () => {
  const commands: string[][] = [[], ['job', 'add'], ['job', 'list'], ['job', 'show'], ['job', 'claim'], ['job', 'complete'], ['init'], ['validate']];

  for (const cmd of commands) {
    const name = cmd.length ? cmd.join(' ') : '(top level)';
    it(`${name} --help shows examples and the exit codes`, async () => {
      const r = await cli([...cmd, '--help']);
      assert.equal(r.code, 0);
      assert.equal(r.err, '');
      // Wherever yargs printed it (see the next test for where it should go).
      const help = r.out + r.console;
      assert.match(help, /^buildcoord/m);
      const missing = [!help.includes('Examples:') && '"Examples:"', !flat(help).includes(flat(EXIT_CODES_HELP)) && 'the exit-code epilogue'].filter(Boolean);
      assert.deepEqual(missing, [], `${name} --help lacks ${missing.join(' and ')}:\n${help}`);
    });
  }

  it('writes help and --version through the Io, not straight to the console', async () => {
    // app.ts says the parser is built "so tests can run it in-process with
    // their own output"; yargs prints help with console.log unless told otherwise.
    for (const args of [['--help'], ['job', 'add', '--help'], ['--version']]) {
      const r = await cli(args);
      assert.equal(r.code, 0);
      assert.equal(r.console, '', `${args.join(' ')}: nothing on the console`);
      assert.notEqual(r.out, '', `${args.join(' ')}: output on io.out`);
    }
  });
});

describe('malformed input', () => {
  let bare = '';
  let repo: string[] = [];
  let mainBefore = '';

  before(async () => {
    bare = path.join(await tmpDir('cli-parse-repo-'), 'coord.git');
    repo = ['--repo', bare];
    const r = await cli(['init', ...repo]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^initialized /);
    mainBefore = await git(bare, 'rev-parse', 'main');
  });

  it('an unknown flag: exit 2, one stderr line naming it', async () => {
    const r = await cli(['job', 'add', '--bogus', ...repo]);
    assert.equal(r.code, 2);
    assert.equal(r.out, '');
    assert.match(r.err, /^buildcoord: .*bogus.*\n$/);
  });

  const long = 'x'.repeat(300);
  const add = (...a: string[]) => ['job', 'add', ...a];
  // [args, text the one stderr line must contain]
  const CASES: Array<[string[], string]> = [
    [add('--priority', '0'), '--priority'],
    [add('--priority', '11'), '--priority'],
    [add('--priority', '1.5'), '--priority'],
    [add('--priority', 'abc'), '--priority'],
    [add('--priority=-1'), '--priority'],
    [add('--priority', '-1'), '--priority'],
    [add('--priority', ''), '--priority'],
    [add('--priority', '1', '--priority', '2'), '--priority'],
    [add('--commit', 'HEAD'), '--commit'],
    [add('--commit', 'xyz'), '--commit'],
    [add('--commit', 'abcdef'), '--commit'],
    [add('--commit', 'a'.repeat(41)), '--commit'],
    [add('--commit', '; rm -rf /'), '--commit'],
    [add('--commit', 'ABCDEF0'), '--commit'],
    [add('--branch', 'a..b'), '--branch'],
    [add('--branch', '$(touch /tmp/pwned)'), '--branch'],
    [add('--branch', 'x y'), '--branch'],
    [add('--branch=--upload-pack=evil'), '--branch'],
    [add('--branch', '--upload-pack=evil'), 'upload-pack'],
    [add('--branch', long), '--branch'],
    [add('--branch', 'a\nb'), '--branch'],
    [add('--branch', 'main;id'), '--branch'],
    [add('--type', 'Make'), '--type'],
    [add('--type', 'a b'), '--type'],
    [add('--type', '../x'), '--type'],
    [add('--type', 'x;y'), '--type'],
    [add('--after', 'nope'), '--after'],
    [add('--after', '../../etc/passwd'), '--after'],
    [add('--on', 'bad name'), '--on'],
    [add('--on=-x'), '--on'],
    [add('--label', 'novalue'), '--label'],
    [add('--label', 'k=a\nb'), '--label'],
    [add('--label', '=v'), '--label'],
    [add('--timeout', '10'), '--timeout'],
    [add('--timeout', 'forever'), '--timeout'],
    [add('--timeout', '0s'), '--timeout'],
    [add('--timeout', '0.4ms'), '--timeout'],
    [add('--retries=-1'), '--retries'],
    [add('--retries', '100'), '--retries'],
    [add('--retries', '1.5'), '--retries'],
    [add('--description', 'd'.repeat(2001)), '--description'],
    [add('--description', 'a\x00b'), '--description'],
    [add('--source=--upload-pack=x'), '--source'],
    [add('--source', 'a\nb'), '--source'],
    [add('--source', ''), '--source'],
    [['job', 'show', '../../etc/passwd'], 'job id'],
    [['job', 'show', 'job_nope'], 'job_nope'],
    [['job', 'show', 'job_a b'], 'job id'],
    [['job', 'complete', 'job_x', '--builder', 'b1', '--attempt', 'x', '--status', 'completed'], '--attempt'],
    [['job', 'complete', 'job_x', '--builder', 'b1', '--attempt', '0', '--status', 'completed'], '--attempt'],
    [['job', 'complete', 'job_x', '--builder', 'b1', '--status', 'completed'], 'attempt'],
    [['job', 'complete', 'job_x', '--builder', 'b1', '--attempt', '1', '--status', 'done'], 'status'],
    [['job', 'complete', 'job_x', '--builder', 'b1', '--attempt', '1', '--status', 'completed', '--summary', 'a\nb'], '--summary'],
    [['job', 'complete', '../x', '--builder', 'b1', '--attempt', '1', '--status', 'completed'], 'job id'],
    [['job', 'complete', 'job_x', '--builder', 'a b', '--attempt', '1', '--status', 'completed'], '--builder'],
    [['job', 'claim', '--builder', 'a b'], '--builder'],
    [['job', 'claim', '--builder', 'b1', '--lease', 'forever'], '--lease'],
    [['job', 'claim', '--builder', 'b1', '--label', 'novalue'], '--label'],
    [['job', 'claim'], '--builder'],
    [['job', 'list', '--status', 'bogus'], 'status'],
    [['job', 'list', '--assigned', 'a b'], '--assigned'],
    [['init', '--builders', 'a b'], '--builders'],
  ];

  for (const [args, names] of CASES) {
    const shown = args.map((a) => (a.length > 30 ? `${JSON.stringify(a.slice(0, 12))}…(${a.length})` : JSON.stringify(a))).join(' ');
    it(`${shown}: exit 2, one line naming ${names}`, async () => {
      const r = await cli([...args, ...repo]);
      assert.equal(r.out, '', 'nothing on stdout');
      assert.equal(r.console, '', 'nothing on the console');
      const lines = r.err.split('\n');
      assert.equal(lines.length, 2, `exactly one stderr line ending in a newline: ${JSON.stringify(r.err)}`);
      assert.ok(lines[0]!.startsWith('buildcoord: '), lines[0]);
      assert.ok(!/internal error/.test(lines[0]!), `not an internal error: ${lines[0]}`);
      assert.ok(lines[0]!.includes(names), `the line names ${names}: ${lines[0]}`);
      assert.equal(r.code, 2, `exit code 2 for ${lines[0]}`);
    });
  }

  it('has at least 30 malformed inputs', () => {
    assert.ok(CASES.length >= 30, String(CASES.length));
  });

  it('left the repository unchanged: main is where init put it, and no job was queued', async () => {
    assert.equal(await git(bare, 'rev-parse', 'main'), mainBefore);
    const r = await cli(['job', 'list', '--json', ...repo]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), []);
  });

  it('free text (descriptions, subjects, bodies, notes) is data: shell syntax and path traversal are kept verbatim and nothing runs', async () => {
    const marker = path.join(await tmpDir('cli-parse-marker-'), 'pwned');
    const nasty = `$(touch ${marker}); \`touch ${marker}\` && ../../etc/passwd | rm -rf / <x> 'q' "dq"`;
    const job = await cli(['job', 'add', '--type', 'make', '--description', nasty, '--json', ...repo]);
    assert.equal(job.code, 0, job.err);
    const id = (JSON.parse(job.out) as { id: string }).id;
    const shown = JSON.parse((await cli(['job', 'show', id, '--json', ...repo])).out) as { description: string };
    assert.equal(shown.description, nasty);
    const sent = await cli(['msg', 'send', '--to', 'all', '--type', 'info', '--subject', nasty, '--body', `${nasty}\nsecond line`, '--json', ...repo]);
    assert.equal(sent.code, 0, sent.err);
    const msgId = (JSON.parse(sent.out) as { id: string }).id;
    const msg = JSON.parse((await cli(['msg', 'show', msgId, '--json', ...repo])).out) as { subject: string; body: string };
    assert.deepEqual([msg.subject, msg.body], [nasty, `${nasty}\nsecond line`]);
    const lock = await cli(['lock', 'acquire', '../../etc/shadow', '--note', nasty, ...repo]);
    assert.equal(lock.code, 2, 'a lock name is a name, not a path');
    const locked = await cli(['lock', 'acquire', 'deploy', '--note', nasty, '--json', ...repo]);
    assert.equal(locked.code, 0, locked.err);
    const held = JSON.parse((await cli(['lock', 'list', '--json', ...repo])).out) as Array<{ name: string; note?: string }>;
    assert.equal(held.find((l) => l.name === 'deploy')?.note, nasty);
    assert.equal(existsSync(marker), false, 'nothing was run');
  });
});
