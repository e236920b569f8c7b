// `buildcoord lock ...`: parse and check every argument, call one operation, print.

import type { Argv } from 'yargs';
import { parseDuration, parseText } from '../model/input.js';
import { listLocks, parseLockName, parseToken } from '../model/locks.js';
import { acquireLock, readLocks, releaseLock, renewLock } from '../store/ops-locks.js';
import type { Handler } from './cmd-jobs.js';
import { ago, clean, span, table } from './format.js';

const RULES = `Fencing: every acquire hands out a token larger than any before it (release and expiry never lower it). Renew and release need the current token: after the lock expired and somebody else took it, the old token is refused. An expired lock nobody took yet may still be renewed with its token. Acquiring a lock you already hold is refused: renew it.`;

export function registerLockCommands(y: Argv, handler: Handler): Argv {
  return y.command('lock', 'Named locks (leases with fencing tokens) in coordination/locks.json', (lock) =>
    lock
      .command(
        'acquire <name>',
        'Take a lock; prints its fencing token. Exit 1 if somebody else holds it (after --wait, if given)',
        (a) =>
          a
            .positional('name', { type: 'string', describe: "Lock name: letters, digits, '.', '_' or '-' (at most 64)" })
            .option('ttl', { type: 'string', default: '10m', describe: 'The lease: the lock lapses this long after acquire or renew' })
            .option('wait', { type: 'string', describe: 'Keep trying this long while somebody else holds it (e.g. 2m)' })
            .option('note', { type: 'string', describe: 'Why you hold it, for people (one line)' })
            .example('$0 lock acquire deploy --ttl 15m --note "release 2.1"', 'prints the token, e.g. 7')
            .example('T=$($0 lock acquire deploy --wait 5m) && ... && $0 lock release deploy --token $T', 'wait for it, work, release')
            .epilogue(RULES),
        handler(async (ctx, argv) => {
          const name = parseLockName(argv.name);
          const ttlMs = parseDuration(argv.ttl, '--ttl');
          const waitMs = argv.wait === undefined ? 0 : parseDuration(argv.wait, '--wait');
          const note = argv.note === undefined ? undefined : parseText(argv.note, '--note', 1000, { singleLine: true });
          const { result } = await acquireLock(await ctx.store(), { name, holder: ctx.actor, ttlMs, waitMs, note }, { clock: ctx.io.clock });
          if (ctx.args.json) ctx.json({ name, token: result.token, expires_at: result.expires_at });
          else ctx.io.out(`${result.token}\n`);
        }),
      )
      .command(
        'renew <name>',
        'Extend a lock you hold to now + --ttl; exit 1 if the token is not the current one',
        (a) =>
          a
            .positional('name', { type: 'string' })
            .option('token', { type: 'string', describe: 'The token acquire printed (required)' })
            .option('ttl', { type: 'string', default: '10m', describe: 'New lease, from now' })
            .example('$0 lock renew deploy --token 7 --ttl 15m', '')
            .epilogue(RULES),
        handler(async (ctx, argv) => {
          const name = parseLockName(argv.name);
          const token = parseToken(argv.token);
          const ttlMs = parseDuration(argv.ttl, '--ttl');
          const { result } = await renewLock(await ctx.store(), { name, token, ttlMs }, { clock: ctx.io.clock });
          if (ctx.args.json) ctx.json({ name, token: result.token, expires_at: result.expires_at });
          else ctx.io.out(`${name} renewed until ${result.expires_at} (token ${result.token})\n`);
        }),
      )
      .command(
        'release <name>',
        'Give a lock back; exit 1 if the token is not the current one',
        (a) =>
          a
            .positional('name', { type: 'string' })
            .option('token', { type: 'string', describe: 'The token acquire printed (required)' })
            .example('$0 lock release deploy --token 7', '')
            .epilogue(RULES),
        handler(async (ctx, argv) => {
          const name = parseLockName(argv.name);
          const token = parseToken(argv.token);
          const { result } = await releaseLock(await ctx.store(), { name, token }, { clock: ctx.io.clock });
          if (ctx.args.json) ctx.json({ name, token: result.token, released: true });
          else ctx.io.out(`${name} released (token ${result.token})\n`);
        }),
      )
      .command(
        'list',
        'Held locks; expired ones are marked (anyone may take them)',
        (a) => a.example('$0 lock list', '').example('$0 lock list --json', 'an array of {name, locked_by, locked_at, expires_at, token, note?, expired}'),
        handler(async (ctx) => {
          const now = ctx.io.clock();
          const list = listLocks(await readLocks(await ctx.store()), now);
          if (ctx.args.json) return ctx.json(list);
          ctx.io.out(
            table(
              ['NAME', 'HOLDER', 'TOKEN', 'ACQUIRED', 'EXPIRES', 'NOTE'],
              list.map((l) => [
                l.name,
                l.locked_by,
                String(l.token),
                `${l.locked_at} (${ago(l.locked_at, now)} ago)`,
                l.expired ? `${l.expires_at} (EXPIRED ${ago(l.expires_at, now)} ago)` : `${l.expires_at} (in ${span(Date.parse(l.expires_at) - now.getTime())})`,
                clean(l.note, 40),
              ]),
            ),
          );
        }),
      )
      .example('$0 lock acquire deploy --wait 5m', 'take the deploy lock, waiting up to 5 minutes; prints the token')
      .example('$0 lock list', 'who holds what, until when')
      .example('$0 lock acquire deploy --ttl 10m', 'prints a fencing token')
      .example('$0 lock release deploy --token 7', '')
      .demandCommand(1, 'name a lock command: acquire, renew, release, list'),
  );
}
