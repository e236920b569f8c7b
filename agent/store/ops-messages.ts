// Message operations: each is one transaction running a pure function of
// agent/model/messages.ts, like the job operations in ops.ts.

import { randomBytes } from 'node:crypto';
import { InvalidFileError } from '../errors.js';
import { canonicalJson } from '../model/canonical.js';
import { newId } from '../model/jobs.js';
import * as msgs from '../model/messages.js';
import { formatProblem, schemaFor, validateWith } from '../model/validate.js';
import { PATHS, type Message, type MessagesFile } from '../model/types.js';
import type { OpDeps } from './ops.js';
import { builderDirs, ROOT } from './layout.js';
import type { Store, TxOutcome } from './store.js';

function deps(d: OpDeps = {}) {
  return { now: d.clock ?? (() => new Date()), rand: d.random ?? randomBytes };
}

function messagesOf(file: MessagesFile | undefined): MessagesFile {
  return file ?? msgs.emptyMessages();
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export async function sendMessage(store: Store, input: msgs.MessageInput, d?: OpDeps): Promise<TxOutcome<Message>> {
  const { now, rand } = deps(d);
  // Id and time are drawn once, outside mutate: a re-run after a rejected push
  // must add the same message, not a second one.
  const at = now();
  const id = newId('msg', at, rand(5));
  return store.transact({
    op: 'message',
    reads: [PATHS.messages],
    mutate: (view) => {
      const file = messagesOf(view.get<MessagesFile>(PATHS.messages));
      // Our id already there: an earlier push whose answer was lost did land. Sent once.
      const landed = file.messages.find((m) => m.id === id);
      if (landed) return { result: landed };
      const r = msgs.send(file, input, id, store.actor, at);
      return {
        result: r.message,
        writes: { [PATHS.messages]: r.file },
        message: `${r.message.type} ${r.message.from} -> ${r.message.to}: ${clip(r.message.subject, 80)}`,
        trailers: { 'Coord-Message': r.message.id },
      };
    },
  });
}

export interface MarkOutcome {
  message: Message;
  changed: boolean;
}

/** One mark (read, ack) by one reader, in one commit; a mark already there is a no-op with no commit. */
function mark(store: Store, op: string, verb: string, apply: (file: MessagesFile, id: string, reader: string) => msgs.Marked, args: { id: string; reader: string }): Promise<TxOutcome<MarkOutcome>> {
  return store.transact<MarkOutcome>({
    op,
    reads: [PATHS.messages],
    mutate: (view) => {
      const r = apply(messagesOf(view.get<MessagesFile>(PATHS.messages)), args.id, args.reader);
      if (!r.changed) return { result: { message: r.message, changed: false } };
      return {
        result: { message: r.message, changed: true },
        writes: { [PATHS.messages]: r.file },
        message: `${verb} ${r.message.id} by ${args.reader}`,
        trailers: { 'Coord-Message': r.message.id },
      };
    },
  });
}

/** Marks a message read by `reader`; reading it again is a no-op with no commit. */
export async function readMessage(store: Store, args: { id: string; reader: string }): Promise<TxOutcome<MarkOutcome>> {
  return mark(store, 'message-read', 'read', msgs.markRead, args);
}

/** Acknowledges (and reads) a message for `reader`; refused unless it asks for an ack. */
export async function ackMessage(store: Store, args: { id: string; reader: string }): Promise<TxOutcome<MarkOutcome>> {
  return mark(store, 'message-ack', 'ack', msgs.acknowledge, args);
}

export interface ArchiveOutcome {
  cutoff: string;
  moved: Message[];
  /** Archive file -> how many messages this run moved into it. */
  files: Record<string, number>;
}

/** Raised inside mutate when the state asks for archive files the transaction did not read. */
class NeedReads extends Error {
  constructor(readonly paths: string[]) {
    super(`need ${paths.join(', ')}`);
  }
}

/**
 * Moves settled messages older than `olderThanMs` to coordination/archive/YYYY-MM.json,
 * all in one commit. Which month files are needed is known only once messages.json
 * is read, so a first try that finds it needs more files (no push) is re-run with them.
 *
 * The archive files are written as `raw` bytes, canonical in messages.schema.json's
 * key order and validated here against that schema: Store.transact validates and
 * orders only paths agent/model/validate.ts maps to a schema, and it does not map
 * coordination/archive/ yet.
 */
export async function archiveMessages(store: Store, olderThanMs: number, d?: OpDeps): Promise<TxOutcome<ArchiveOutcome>> {
  const { now } = deps(d);
  const cutoff = new Date(now().getTime() - olderThanMs);
  const order = schemaFor(PATHS.messages);
  let extra: string[] = [];
  for (let round = 1; ; round++) {
    try {
      return await store.transact({
        op: 'archive',
        reads: [PATHS.messages, ROOT, ...extra],
        mutate: (view) => {
          const file = messagesOf(view.get<MessagesFile>(PATHS.messages));
          // A message to all leaves only once every builder on main has read it.
          const builders = builderDirs(view);
          const targets = msgs.archiveTargets(file, cutoff, builders);
          const missing = targets.filter((p) => !extra.includes(p));
          if (missing.length) throw new NeedReads(missing);
          const existing: Record<string, MessagesFile | undefined> = {};
          const problems: string[] = [];
          for (const path of targets) {
            const doc = view.get<MessagesFile>(path);
            if (doc !== undefined) problems.push(...validateWith('messages.schema.json', doc, path).map(formatProblem));
            existing[path] = doc;
          }
          // Appending to a broken archive would bury the damage under new data.
          if (problems.length) throw new InvalidFileError(problems.sort());
          const r = msgs.archive(file, existing, cutoff, builders);
          const result: ArchiveOutcome = { cutoff: cutoff.toISOString(), moved: r.moved, files: {} };
          if (r.moved.length === 0) return { result };
          const raw: Record<string, string> = {};
          for (const [path, doc] of Object.entries(r.archives)) {
            const found = validateWith('messages.schema.json', doc, path);
            if (found.length) throw new Error(`refusing to write invalid coordination data: ${found.map(formatProblem).join('; ')}`);
            raw[path] = canonicalJson(doc, order);
            result.files[path] = r.moved.filter((m) => msgs.archivePath(msgs.monthOf(m)) === path).length;
          }
          return {
            result,
            writes: { [PATHS.messages]: r.file },
            raw,
            message: `archive ${r.moved.length} message${r.moved.length === 1 ? '' : 's'} sent before ${result.cutoff}`,
            trailers: { 'Coord-Archive': Object.keys(raw).join(' ') },
          };
        },
      });
    } catch (e) {
      if (!(e instanceof NeedReads) || round >= 10) throw e;
      extra = [...new Set([...extra, ...e.paths])].sort();
    }
  }
}

export async function readMessages(store: Store): Promise<MessagesFile> {
  const view = await store.read([PATHS.messages]);
  return messagesOf(view.get<MessagesFile>(PATHS.messages));
}
