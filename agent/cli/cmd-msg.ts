// `buildcoord msg ...`: parse and check every argument, call one operation, print.

import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError } from '../errors.js';
import { parseDuration } from '../model/input.js';
import {
  EVERYONE,
  findMessage,
  hasAcked,
  hasRead,
  inbox,
  parseBody,
  parseMessageId,
  parseMessageType,
  parseParty,
  parseSubject,
  type MessageInput,
} from '../model/messages.js';
import { MESSAGE_TYPES, type Message } from '../model/types.js';
import { ackMessage, archiveMessages, readMessage, readMessages, sendMessage } from '../store/ops-messages.js';
import type { Handler } from './cmd-jobs.js';
import type { Context } from './context.js';
import { ago, clean, table } from './format.js';

/** The message's flags checked one by one, before any I/O (the body file is read later, at the edge). */
export function messageInput(argv: Record<string, unknown>): MessageInput & { bodyFile?: string } {
  if (argv.to === undefined) throw new UsageError('--to is required: a builder, a person or "all"');
  if (argv.subject === undefined) throw new UsageError('--subject is required');
  if (argv.body !== undefined && argv['body-file'] !== undefined) throw new UsageError('--body and --body-file: give one of them, not both');
  const bodyFile = argv['body-file'];
  if (bodyFile !== undefined && (typeof bodyFile !== 'string' || bodyFile.length === 0)) throw new UsageError('--body-file: expected a file name');
  return {
    to: parseParty(argv.to, '--to'),
    type: parseMessageType(argv.type ?? 'info'),
    subject: parseSubject(argv.subject),
    body: argv.body === undefined ? '' : parseBody(argv.body),
    ack_required: argv['ack-required'] === true,
    in_reply_to: argv['reply-to'] === undefined ? null : parseMessageId(argv['reply-to'], '--reply-to'),
    ...(typeof bodyFile === 'string' ? { bodyFile } : {}),
  };
}

async function readBodyFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--body-file ${JSON.stringify(path)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseBody(text, '--body-file');
}

/** Whose messages: --builder, else the local user. */
function reader(ctx: Context): string {
  return ctx.builder ?? ctx.actor;
}

function readState(m: Message, who: string): string {
  const read = hasRead(m, who) ? 'yes' : 'no';
  if (!m.ack_required) return read;
  return `${read}, ${hasAcked(m, who) ? 'acked' : 'ack needed'}`;
}

function describeMessage(m: Message, who: string, now: Date): string {
  const rows: Array<[string, string]> = [
    ['id', m.id],
    ['from', m.from],
    ['to', m.to],
    ['type', m.type],
    ['subject', clean(m.subject, 200)],
    ['sent', `${m.timestamp} (${ago(m.timestamp, now)} ago)`],
    [`read (${who})`, readState(m, who)],
    ['read_by', (m.read_by ?? []).join(', ') || '-'],
  ];
  if (m.ack_required) rows.push(['acked_by', (m.acked_by ?? []).join(', ') || '-']);
  if (m.in_reply_to) rows.push(['in_reply_to', m.in_reply_to]);
  const w = Math.max(...rows.map(([k]) => k.length));
  // The body keeps its lines, but no terminal control sequences.
  // eslint-disable-next-line no-control-regex
  const body = m.body.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ' ');
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n' + (body ? `\n${body}${body.endsWith('\n') ? '' : '\n'}` : '');
}

export function registerMsgCommands(y: Argv, handler: Handler): Argv {
  return y.command('msg', 'Send, list, read and acknowledge messages between builders and people', (msg) =>
    msg
      .command(
        'send',
        'Send a message; prints its id',
        (a) =>
          a
            .option('to', { type: 'string', describe: 'A builder, a person, or "all" (required)' })
            .option('type', { type: 'string', describe: `${MESSAGE_TYPES.join(', ')} (default info)` })
            .option('subject', { type: 'string', describe: 'One line, at most 200 characters (required)' })
            .option('body', { type: 'string', describe: 'The text (at most 65536 characters)' })
            .option('body-file', { type: 'string', describe: 'Read the text from this file instead' })
            .option('ack-required', { type: 'boolean', describe: 'Ask the addressee to acknowledge it (msg ack)' })
            .option('reply-to', { type: 'string', describe: 'Id of the message this one answers' })
            .example('$0 msg send --to all --type warning --subject "build2 disk almost full"', 'tell everyone')
            .example('$0 msg send --to build1 --type request --subject "drain before Friday" --body-file notes.txt --ack-required', 'ask for an acknowledgement'),
        handler(async (ctx, argv) => {
          const { bodyFile, ...input } = messageInput(argv);
          if (bodyFile !== undefined) input.body = await readBodyFile(bodyFile);
          const { result } = await sendMessage(await ctx.store(), input, { clock: ctx.io.clock });
          if (ctx.args.json) ctx.json({ id: result.id });
          else ctx.io.out(result.id + '\n');
        }),
      )
      .command(
        'list',
        'Messages for you (to you or to all), newest first',
        (a) =>
          a
            .option('unread', { type: 'boolean', describe: 'Only those you have not read' })
            .option('all', { type: 'boolean', describe: 'Every message, whoever it is for' })
            .option('for', { type: 'string', describe: 'Whose messages (default: --builder, else your user name)' })
            .example('$0 msg list --unread', 'what you have not read yet')
            .example('$0 msg list --all --json', 'every message as a JSON array'),
        handler(async (ctx, argv) => {
          const who = argv.for === undefined ? reader(ctx) : parseParty(argv.for, '--for');
          const file = await readMessages(await ctx.store());
          const list = inbox(file, who, { all: argv.all === true, unread: argv.unread === true });
          if (ctx.args.json) return ctx.json(list);
          const now = ctx.io.clock();
          ctx.io.out(
            table(
              ['ID', 'FROM', 'TO', 'TYPE', 'SUBJECT', 'AGE', 'READ'],
              list.map((m) => [m.id, m.from, m.to, m.type, clean(m.subject, 50), ago(m.timestamp, now), readState(m, who)]),
            ),
          );
        }),
      )
      .command(
        'show <id>',
        'One message in full (does not mark it read)',
        (a) =>
          a
            .positional('id', { type: 'string', describe: 'Message id (a unique prefix is enough)' })
            .example('$0 msg show msg_20261123T101500Z_3f9a1c2b7d', '')
            .example('$0 msg show msg_20261123T101500Z_3f9a1c2b7d --json', 'the message as stored'),
        handler(async (ctx, argv) => {
          const id = parseMessageId(argv.id);
          const who = reader(ctx);
          const m = findMessage(await readMessages(await ctx.store()), id);
          if (ctx.args.json) ctx.json(m);
          else ctx.io.out(describeMessage(m, who, ctx.io.clock()));
        }),
      )
      .command(
        'read <id>',
        'Mark a message read by you (only you: a message to all stays unread for the others)',
        (a) =>
          a
            .positional('id', { type: 'string', describe: 'Message id (a unique prefix is enough)' })
            .example('$0 msg read msg_20261123T101500Z_3f9a1c2b7d --builder build1', 'build1 has read it'),
        handler(async (ctx, argv) => {
          const id = parseMessageId(argv.id);
          const who = reader(ctx);
          const { result, commit } = await readMessage(await ctx.store(), { id, reader: who });
          if (ctx.args.json) ctx.json({ id: result.message.id, reader: who, changed: result.changed, commit, message: result.message });
          else ctx.io.out(`${result.message.id} ${result.changed ? 'marked read' : 'was already read'} by ${who}\n`);
        }),
      )
      .command(
        'ack <id>',
        'Acknowledge a message that asks for it (and mark it read); exit 1 if it does not',
        (a) =>
          a
            .positional('id', { type: 'string', describe: 'Message id (a unique prefix is enough)' })
            .example('$0 msg ack msg_20261123T101500Z_3f9a1c2b7d --builder build1', 'build1 acknowledges it'),
        handler(async (ctx, argv) => {
          const id = parseMessageId(argv.id);
          const who = reader(ctx);
          const { result, commit } = await ackMessage(await ctx.store(), { id, reader: who });
          if (ctx.args.json) ctx.json({ id: result.message.id, reader: who, changed: result.changed, commit, message: result.message });
          else ctx.io.out(`${result.message.id} ${result.changed ? 'acknowledged' : 'was already acknowledged'} by ${who}\n`);
        }),
      )
      .command(
        'archive',
        'Move settled messages older than a cutoff to coordination/archive/YYYY-MM.json (one commit): read (and acked if asked) by their addressee; a message to all, by every builder on main',
        (a) =>
          a
            .option('older-than', { type: 'string', default: '7d', describe: 'Only messages sent longer ago than this (e.g. 7d, 36h)' })
            .example('$0 msg archive --older-than 7d', 'keep messages.json short')
            .example('$0 msg archive --older-than 30d --json', '{"archived": N, "ids": [...], "files": {...}}')
            .epilogue(
              `Settled means: a direct message read by its addressee (and acknowledged by them if it asks for it); a message to "${EVERYONE}" read (and acknowledged, if asked) by at least one reader. An unread direct message is never archived.`,
            ),
        handler(async (ctx, argv) => {
          const olderThan = parseDuration(argv['older-than'], '--older-than');
          const { result, commit } = await archiveMessages(await ctx.store(), olderThan, { clock: ctx.io.clock });
          if (ctx.args.json) return ctx.json({ archived: result.moved.length, ids: result.moved.map((m) => m.id), files: result.files, cutoff: result.cutoff, commit });
          if (result.moved.length === 0) return ctx.io.out(`nothing to archive (no settled message sent before ${result.cutoff})\n`);
          const files = Object.entries(result.files).map(([p, n]) => `${p} (${n})`);
          ctx.io.out(`archived ${result.moved.length} message${result.moved.length === 1 ? '' : 's'} to ${files.join(', ')}\n`);
        }),
      )
      .example('$0 msg list --unread --builder build1', "build1's unread messages")
      .example('$0 msg send --to all --type warning --subject "main is red"', 'tell everyone')
      .example('$0 msg send --to build2 --type info --subject "deploy at 5"', '')
      .example('$0 msg list --unread', 'unread messages for this builder')
      .demandCommand(1, 'name a msg command: send, list, show, read, ack, archive'),
  );
}
