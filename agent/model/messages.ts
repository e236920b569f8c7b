// Messages between builders and people as pure functions: state, reader and
// time in, new state out. No fs, no git, no clock reads. Like jobs.ts, every
// function returns a new file and never edits its argument, so a transaction
// can re-run it on fresh state after a rejected push.
//
// Who has read what is kept per reader: `read_by` lists everyone who read a
// message, and "unread" in a listing always means "this reader is not in
// read_by". The schema's `read` boolean is the operators' view of a direct
// message: it becomes true only when the addressee reads it. A message to
// "all" never sets `read`: one builder reading it says nothing about the others.

import { PreconditionError, UsageError } from '../errors.js';
import { MSG_ID_RE, parseText } from './input.js';
import { findById } from './jobs.js';
import { MESSAGE_TYPES, PATHS, type Iso, type Message, type MessagesFile, type MessageType } from './types.js';

export const MESSAGES_SCHEMA_REF = '../schemas/messages.schema.json';
/** Archive files sit one directory deeper than messages.json. */
export const ARCHIVE_SCHEMA_REF = '../../schemas/messages.schema.json';
export const ARCHIVE_DIR = 'coordination/archive';

/** The schema's pattern for from, to and read_by: a builder, a person (may be an e-mail address) or "all". */
export const PARTY_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
export const SUBJECT_MAX = 200;
export const BODY_MAX = 65536;
export const EVERYONE = 'all';

export function emptyMessages(): MessagesFile {
  return { $schema: MESSAGES_SCHEMA_REF, version: 1, messages: [] };
}

export function emptyArchive(): MessagesFile {
  return { $schema: ARCHIVE_SCHEMA_REF, version: 1, messages: [] };
}

/** coordination/archive/YYYY-MM.json for a month "YYYY-MM". */
export function archivePath(month: string): string {
  if (!/^\d{4}-\d{2}$/.test(month)) throw new Error(`not a month: ${month}`);
  return `${ARCHIVE_DIR}/${month}.json`;
}

/** The UTC month a message was sent in; the schema guarantees the timestamp starts with YYYY-MM. */
export function monthOf(m: Message): string {
  return m.timestamp.slice(0, 7);
}

// ---------------------------------------------------------------- input

function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

export function parseParty(value: unknown, flag: string): string {
  if (typeof value !== 'string' || !PARTY_RE.test(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected a builder or person (letters, digits, '.', '_', '@', '+' or '-', at most 128) or "all"`);
  }
  return value;
}

export function parseMessageType(value: unknown, flag = '--type'): MessageType {
  if (typeof value !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected one of ${MESSAGE_TYPES.join(', ')}`);
  }
  return value as MessageType;
}

export function parseSubject(value: unknown, flag = '--subject'): string {
  const text = parseText(value, flag, SUBJECT_MAX, { singleLine: true });
  if (text.trim().length === 0) throw new UsageError(`${flag}: must not be empty`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) throw new UsageError(`${flag}: must not contain control characters (tabs, escapes)`);
  return text;
}

export function parseBody(value: unknown, flag = '--body'): string {
  return parseText(value, flag, BODY_MAX);
}

export function parseMessageId(value: unknown, flag = 'message id'): string {
  // A unique prefix of at least 8 characters is accepted later (findMessage); the alphabet is checked here.
  if (typeof value !== 'string' || !MSG_ID_RE.test(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected a message id such as msg_20261123T101500Z_3f9a1c2b7d`);
  }
  return value;
}

// ---------------------------------------------------------------- reading

export function findMessage(file: MessagesFile, id: string): Message {
  return findById(file.messages, id, 'message', PATHS.messages);
}

/** Addressed to this reader: to them by name, or to everyone. */
export function isFor(m: Message, reader: string): boolean {
  return m.to === reader || m.to === EVERYONE;
}

/** Whether this reader has read the message. A hand-set `read: true` counts for the addressee. */
export function hasRead(m: Message, reader: string): boolean {
  return (m.read_by ?? []).includes(reader) || (m.read && m.to === reader);
}

export function hasAcked(m: Message, reader: string): boolean {
  return (m.acked_by ?? []).includes(reader);
}

function ms(at: Iso): number {
  return Date.parse(at);
}

/** Newest first; the id breaks ties so the order is total. */
export function compareNewest(a: Message, b: Message): number {
  return ms(b.timestamp) - ms(a.timestamp) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export interface InboxOptions {
  /** Every message, not only those for the reader. */
  all?: boolean;
  /** Only those the reader has not read. */
  unread?: boolean;
}

export function inbox(file: MessagesFile, reader: string, opts: InboxOptions = {}): Message[] {
  return file.messages.filter((m) => (opts.all || isFor(m, reader)) && (!opts.unread || !hasRead(m, reader))).sort(compareNewest);
}

// ---------------------------------------------------------------- writing

export interface MessageInput {
  to: string;
  type: MessageType;
  subject: string;
  body: string;
  ack_required?: boolean;
  in_reply_to?: string | null;
}

export function send(file: MessagesFile, input: MessageInput, id: string, from: string, now: Date): { file: MessagesFile; message: Message } {
  // Ids carry 40 random bits: a clash means the caller reused randomness.
  if (file.messages.some((m) => m.id === id)) throw new PreconditionError(`message id ${id} already exists`);
  const inReplyTo = input.in_reply_to ?? null;
  // Only a live message can be answered: an archived one was settled long ago.
  if (inReplyTo && !file.messages.some((m) => m.id === inReplyTo)) throw new UsageError(`--reply-to ${inReplyTo}: no such message in ${PATHS.messages}`);
  const message: Message = {
    id,
    from,
    to: input.to,
    type: input.type,
    subject: input.subject,
    body: input.body,
    timestamp: now.toISOString(),
    read: false,
  };
  if (input.ack_required) message.ack_required = true;
  if (inReplyTo) message.in_reply_to = inReplyTo;
  return { file: { ...file, messages: [...file.messages, message] }, message };
}

function replace(file: MessagesFile, message: Message): MessagesFile {
  return { ...file, messages: file.messages.map((m) => (m.id === message.id ? message : m)) };
}

function withReader(m: Message, reader: string): Message {
  const next: Message = { ...m, read_by: (m.read_by ?? []).includes(reader) ? m.read_by : [...(m.read_by ?? []), reader] };
  if (m.to === reader) next.read = true;
  return next;
}

export interface Marked {
  file: MessagesFile;
  message: Message;
  /** False when the reader had already done this: nothing to write, nothing to commit. */
  changed: boolean;
}

/** Marks a message read by this reader only. */
export function markRead(file: MessagesFile, id: string, reader: string): Marked {
  const cur = findMessage(file, id);
  const next = withReader(cur, reader);
  const changed = next.read !== cur.read || (next.read_by ?? []).length !== (cur.read_by ?? []).length;
  return changed ? { file: replace(file, next), message: next, changed } : { file, message: cur, changed };
}

/**
 * Acknowledges a message (and reads it). Only a message that asks for it, and
 * only by an addressee: acknowledging somebody else's direct message would
 * tell its sender something untrue.
 */
export function acknowledge(file: MessagesFile, id: string, reader: string): Marked {
  const cur = findMessage(file, id);
  if (!cur.ack_required) throw new PreconditionError(`message ${cur.id} does not ask for an acknowledgement; use \`msg read\``);
  if (!isFor(cur, reader)) throw new PreconditionError(`message ${cur.id} is addressed to ${cur.to}, not ${reader}: only the addressee acknowledges it`);
  const read = withReader(cur, reader);
  const next: Message = hasAcked(cur, reader) ? read : { ...read, acked_by: [...(cur.acked_by ?? []), reader] };
  const changed =
    next.read !== cur.read || (next.read_by ?? []).length !== (cur.read_by ?? []).length || (next.acked_by ?? []).length !== (cur.acked_by ?? []).length;
  return changed ? { file: replace(file, next), message: next, changed } : { file, message: cur, changed };
}

// ---------------------------------------------------------------- archive

/**
 * Whether a message is done with and may leave messages.json:
 * - a direct message: its addressee has read it (read: true, or the addressee
 *   is in read_by) and, if it asks for an acknowledgement, has acknowledged it;
 *   somebody else reading it does not count, so an unread direct message is
 *   never archived;
 * - a message to "all": every builder in `builders` (those on main; its sender
 *   aside) has read it, and acknowledged it if it asks for that, so it never
 *   leaves the inbox of a builder that has not seen it. A hand-set read: true
 *   settles it too. With no builders given: at least one reader (and ack).
 */
export function isSettled(m: Message, builders: readonly string[] = []): boolean {
  if (m.to === EVERYONE) {
    if (m.read && !m.ack_required) return true;
    const readers = builders.filter((b) => b !== m.from);
    if (readers.length === 0) {
      const read = m.read || (m.read_by ?? []).length > 0;
      return read && (!m.ack_required || (m.acked_by ?? []).length > 0);
    }
    return readers.every((b) => (m.read || hasRead(m, b)) && (!m.ack_required || hasAcked(m, b)));
  }
  return hasRead(m, m.to) && (!m.ack_required || hasAcked(m, m.to));
}

function archivable(file: MessagesFile, cutoff: Date, builders: readonly string[]): Message[] {
  return file.messages.filter((m) => ms(m.timestamp) < cutoff.getTime() && isSettled(m, builders));
}

/** The archive files an archive run at this cutoff needs to read (and will write). */
export function archiveTargets(file: MessagesFile, cutoff: Date, builders: readonly string[] = []): string[] {
  return [...new Set(archivable(file, cutoff, builders).map((m) => archivePath(monthOf(m))))].sort();
}

export interface Archived {
  file: MessagesFile;
  /** The archive files to write, by path, whole. */
  archives: Record<string, MessagesFile>;
  moved: Message[];
}

/**
 * Moves settled messages sent before the cutoff into the archive file of the
 * month each was sent in, appending to what is there. A message whose id is
 * already archived (a hand restore, say) replaces its archived copy in place:
 * one copy, the newest state, never a duplicate.
 *
 * `existing` must hold every path archiveTargets() names (undefined for a
 * file that does not exist yet).
 */
export function archive(file: MessagesFile, existing: Record<string, MessagesFile | undefined>, cutoff: Date, builders: readonly string[] = []): Archived {
  const moving = archivable(file, cutoff, builders);
  if (moving.length === 0) return { file, archives: {}, moved: [] };
  const byPath = new Map<string, Message[]>();
  for (const m of [...moving].sort((a, b) => -compareNewest(a, b))) {
    const path = archivePath(monthOf(m));
    if (!(path in existing)) throw new Error(`archive: ${path} was not read`);
    const list = byPath.get(path) ?? [];
    // Duplicate ids in messages.json (a hand edit): the first one wins.
    if (!list.some((x) => x.id === m.id)) list.push(m);
    byPath.set(path, list);
  }
  const archives: Record<string, MessagesFile> = {};
  for (const [path, list] of byPath) {
    const base = existing[path] ?? emptyArchive();
    const incoming = new Map(list.map((m) => [m.id, m]));
    const kept = base.messages.map((m) => {
      const live = incoming.get(m.id);
      if (!live) return m;
      incoming.delete(m.id);
      return live;
    });
    archives[path] = { ...base, $schema: base.$schema ?? ARCHIVE_SCHEMA_REF, messages: [...kept, ...incoming.values()] };
  }
  const gone = new Set(moving.map((m) => m.id));
  return { file: { ...file, messages: file.messages.filter((m) => !gone.has(m.id)) }, archives, moved: moving.filter((m, i) => moving.findIndex((x) => x.id === m.id) === i) };
}
