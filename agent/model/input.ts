// Checks on what people type. Pure: each returns the parsed value or throws a
// UsageError whose one line names the flag and what it expects.

import { UsageError } from '../errors.js';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const TYPE_RE = /^[a-z][a-z0-9-]{0,31}$/;
export const COMMIT_RE = /^[0-9a-f]{7,40}$/;
export const JOB_ID_RE = /^job_[A-Za-z0-9_-]{1,80}$/;
export const MSG_ID_RE = /^msg_[A-Za-z0-9_-]{1,80}$/;

function show(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const clipped = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(clipped);
}

export function parsePriority(value: unknown, flag = '--priority'): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 10) throw new UsageError(`${flag} ${show(value)}: expected an integer from 1 (highest) to 10 (lowest)`);
  return n;
}

export function parseName(value: unknown, flag: string): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected a name of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)`);
  }
  return value;
}

export function parseType(value: unknown, flag = '--type'): string {
  if (typeof value !== 'string' || !TYPE_RE.test(value)) {
    throw new UsageError(`${flag} ${show(value)}: expected a job type such as build, maven, deb, make (lowercase letters, digits and '-')`);
  }
  return value;
}

export function parseCommit(value: unknown, flag = '--commit'): string {
  if (typeof value !== 'string' || !COMMIT_RE.test(value)) throw new UsageError(`${flag} ${show(value)}: expected 7 to 40 lowercase hex digits`);
  return value;
}

export function parseJobId(value: unknown, flag = 'job id'): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,90}$/.test(value)) throw new UsageError(`${flag} ${show(value)}: expected a job id such as job_20261123T101500Z_3f9a1c2b7d`);
  return value;
}

/**
 * The rules of `git check-ref-format --branch`, done here so no argument ever
 * reaches a command line unchecked (the tests compare this with git itself).
 */
export function isValidBranch(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name === '@' || name === 'HEAD' || name.startsWith('-')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  if (name.includes('..') || name.includes('@{') || name.includes('//')) return false;
  if (name.startsWith('/') || name.endsWith('/') || name.endsWith('.')) return false;
  for (const part of name.split('/')) {
    if (part.startsWith('.') || part.endsWith('.lock')) return false;
  }
  return true;
}

/** Characters that are legal in a git branch name but that no honest branch needs: they only matter to a shell. */
export const SHELL_META = /[;&|$`'"<>(){}\\!*?#\s]/;

export function parseBranch(value: unknown, flag = '--branch'): string {
  if (typeof value !== 'string' || !isValidBranch(value)) throw new UsageError(`${flag} ${show(value)}: not a valid git branch name`);
  // Refused here, not only by the builder that would run it: the person learns it now, and nothing is queued.
  if (SHELL_META.test(value)) throw new UsageError(`${flag} ${show(value)}: shell metacharacters ( ; & | $ \` quotes < > ( ) { } \\ ! * ? # or spaces) have no place in a branch a builder checks out`);
  return value;
}

export function parseText(value: unknown, flag: string, max: number, opts: { singleLine?: boolean } = {}): string {
  if (typeof value !== 'string') throw new UsageError(`${flag}: expected text`);
  if (value.length > max) throw new UsageError(`${flag}: ${value.length} characters is too long (at most ${max})`);
  // eslint-disable-next-line no-control-regex
  if (opts.singleLine && /[\r\n\x00]/.test(value)) throw new UsageError(`${flag}: must be a single line`);
  // eslint-disable-next-line no-control-regex
  if (/\x00/.test(value)) throw new UsageError(`${flag}: must not contain NUL characters`);
  return value;
}

/** A source is a git URL or a path; never an option in disguise, never a control character. */
export function parseSource(value: unknown, flag = '--source'): string {
  const text = parseText(value, flag, 1024, { singleLine: true });
  if (text.length === 0 || text.startsWith('-')) throw new UsageError(`${flag} ${show(text)}: expected a git URL or a path`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) throw new UsageError(`${flag} ${show(text)}: contains control characters`);
  return text;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "2s", "10m", "1.5h", "7d" -> milliseconds. */
export function parseDuration(value: unknown, flag: string): number {
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim()) : null;
  if (!m) throw new UsageError(`${flag} ${show(value)}: expected a duration such as 500ms, 2s, 10m, 1h or 7d`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2]!]!);
  if (!Number.isFinite(ms) || ms < 1 || ms > 366 * UNITS.d!) throw new UsageError(`${flag} ${show(value)}: must be more than 0 and at most a year`);
  return ms;
}

export function parseLabel(value: unknown, flag = '--label'): [string, string] {
  const m = typeof value === 'string' ? /^([A-Za-z0-9._-]{1,64})=([^\x00-\x1f]{0,128})$/.exec(value) : null;
  if (!m) throw new UsageError(`${flag} ${show(value)}: expected key=value (key of letters, digits, '.', '_' or '-')`);
  return [m[1]!, m[2]!];
}

export function parseCount(value: unknown, flag: string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} ${show(value)}: expected an integer from ${min} to ${max}`);
  return n;
}
