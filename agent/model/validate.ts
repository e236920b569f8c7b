// Validation of coordination files against schemas/*.schema.json.
//
// The schemas are the contract a person editing by hand sees in their editor;
// this module applies the same contract in code and turns ajv's errors into one
// line each that names the file, the JSON pointer and what to change.
//
// Pure apart from reading the schema files: no clock, no git, no other fs.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv2020, ErrorObject, Options, ValidateFunction } from 'ajv/dist/2020.js';
import { NOT_BUILDER_DIRS } from './types.js';

export interface Problem {
  /** Path of the file, relative to the coordination repository root. */
  file: string;
  /** JSON pointer of the offending value; "/" for the whole document. */
  pointer: string;
  message: string;
}

/** Every schema in schemas/, by file name. */
export const SCHEMA_NAMES = [
  'agent-config.schema.json',
  'build_config.schema.json',
  'health_dashboard.schema.json',
  'heartbeat.schema.json',
  'jobs.schema.json',
  'locks.schema.json',
  'messages.schema.json',
  'status.schema.json',
] as const;

export const CONFIG_SCHEMA = 'agent-config.schema.json';

/** `FILE: /json/pointer: message`, the one-line form for people. */
export function formatProblem(p: Problem): string {
  return `${p.file}: ${p.pointer === '' ? '/' : p.pointer}: ${p.message}`;
}

// ---------------------------------------------------------------------------
// Locating and compiling the schemas

let cachedSchemasDir: string | undefined;

/**
 * The package's schemas/ directory. Found by walking up from this module so the
 * same code works from agent/model/ (source) and dist/agent/model/ (compiled).
 */
export function schemasDir(): string {
  if (cachedSchemasDir !== undefined) return cachedSchemasDir;
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  for (;;) {
    const candidate = join(dir, 'schemas');
    if (existsSync(join(candidate, 'jobs.schema.json'))) {
      cachedSchemasDir = candidate;
      return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`buildcoord: cannot find schemas/jobs.schema.json above ${start}`);
    dir = parent;
  }
}

// How validators are built. The build (scripts/compile-schemas.mjs) compiles
// every schema with exactly these options into standalone code, so a CLI call
// or an agent loads ready functions instead of ajv's compiler: compiling the
// eight schemas at run time cost ~200 ms and ~13 MB resident.
//
// verbose: errors carry the failing data and parent schema, which the human
// messages below need (allowed field names, both bounds of a range).
// validateSchema: false: our own bundled schemas are checked against the
// 2020-12 meta-schema once, in test/unit/schemas.test.ts, not on every call.
export const AJV_OPTIONS: Readonly<Options> = { allErrors: true, strict: true, verbose: true, validateSchema: false };

/** The compiled module's name, beside this one in dist/agent/model/. */
export const PRECOMPILED_FILE = 'schemas.generated.cjs';

// ajv and ajv-formats are CommonJS; required on demand, so nothing loads the
// compiler while the precompiled validators are current.
const requireHere = createRequire(import.meta.url);

/** A new ajv with the options and formats every validator here is built with. */
export function newAjv(extra: Options = {}): Ajv2020 {
  const { Ajv2020: AjvClass } = requireHere('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  // ajv-formats is CommonJS with `exports.default = plugin`.
  const ajvFormats = requireHere('ajv-formats') as { default: (ajv: Ajv2020) => unknown };
  const ajv = new AjvClass({ ...AJV_OPTIONS, ...extra });
  ajvFormats.default(ajv);
  return ajv;
}

/** The exported name of a schema's validator in the compiled module: "agent-config.schema.json" -> "agent_config". */
export function precompiledName(schemaName: string): string {
  return schemaName.replace(/\.schema\.json$/, '').replace(/[^A-Za-z0-9_]/g, '_');
}

/** sha256 of a schema's text: the compiled module records it, so a stale build is never used. */
export function schemaHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What scripts/compile-schemas.mjs writes: a validator per schema, and the sha256 of the text each was compiled from. */
export interface Precompiled {
  hashes: Record<string, string>;
  validators: Record<string, ValidateFunction>;
}

/** The compiled validator for a schema only if it was compiled from exactly this text; else undefined. */
export function currentPrecompiled(pre: Precompiled | null, schemaName: string, text: string): ValidateFunction | undefined {
  if (pre === null || pre.hashes[schemaName] !== schemaHash(text)) return undefined;
  return pre.validators[precompiledName(schemaName)];
}

let precompiled: Precompiled | null | undefined;
let runtimeAjv: Ajv2020 | undefined;
const validators = new Map<string, ValidateFunction>();
const validatorOrigin = new Map<string, 'precompiled' | 'runtime'>();

function loadPrecompiled(): Precompiled | null {
  if (precompiled !== undefined) return precompiled;
  try {
    precompiled = requireHere(`./${PRECOMPILED_FILE}`) as Precompiled;
  } catch (err) {
    // Not built (tsc alone, or running from the sources): compile at run time.
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    precompiled = null;
  }
  return precompiled;
}

const schemaTexts = new Map<string, string>();

function schemaText(schemaName: string): string {
  const cached = schemaTexts.get(schemaName);
  if (cached !== undefined) return cached;
  if (!/^[A-Za-z0-9_-]+\.schema\.json$/.test(schemaName)) throw new Error(`buildcoord: not a schema name: ${schemaName}`);
  const text = readFileSync(join(schemasDir(), schemaName), 'utf8');
  schemaTexts.set(schemaName, text);
  return text;
}

function parseSchema(schemaName: string): Record<string, unknown> {
  const schema: unknown = JSON.parse(schemaText(schemaName));
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new Error(`buildcoord: ${schemaName} is not a JSON object`);
  }
  return schema as Record<string, unknown>;
}

function validatorFor(schemaName: string): ValidateFunction {
  const cached = validators.get(schemaName);
  if (cached) return cached;
  let validate = currentPrecompiled(loadPrecompiled(), schemaName, schemaText(schemaName));
  validatorOrigin.set(schemaName, validate ? 'precompiled' : 'runtime');
  // A schema edited since the build is compiled from its current text: a stale validator never judges a file.
  validate ??= (runtimeAjv ??= newAjv()).compile(parseSchema(schemaName));
  validators.set(schemaName, validate);
  return validate;
}

/** Where a schema's validator came from (for tests): the build's compiled module, or ajv at run time. */
export function validatorSource(schemaName: string): 'precompiled' | 'runtime' {
  validatorFor(schemaName);
  return validatorOrigin.get(schemaName)!;
}

const schemaObjects = new Map<string, Record<string, unknown>>();

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/**
 * The parsed schema for a repository path (frozen; e.g. for canonical key
 * order), or null when no schema applies.
 */
export function schemaFor(repoPath: string): Record<string, unknown> | null {
  const name = schemaNameFor(repoPath);
  if (name === null) return null;
  let schema = schemaObjects.get(name);
  if (schema === undefined) {
    // A copy separate from the one ajv compiled, so freezing cannot affect ajv.
    schema = deepFreeze(parseSchema(name));
    schemaObjects.set(name, schema);
  }
  return schema;
}

// ---------------------------------------------------------------------------
// Which schema applies to which repository path

const FIXED_PATHS: Readonly<Record<string, string>> = {
  'coordination/jobs.json': 'jobs.schema.json',
  'coordination/locks.json': 'locks.schema.json',
  'coordination/messages.json': 'messages.schema.json',
  'shared/build_config.json': 'build_config.schema.json',
  'shared/health_dashboard.json': 'health_dashboard.schema.json',
};

const BUILDER_FILE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/(status|heartbeat)\.json$/;

function normalizeRepoPath(repoPath: string): string {
  let p = repoPath.replace(/\\/g, '/');
  while (p.startsWith('./')) p = p.slice(2);
  return p;
}

/** The schema file name for a path in the coordination repository, or null if none applies. */
export function schemaNameFor(repoPath: string): string | null {
  const p = normalizeRepoPath(repoPath);
  const fixed = FIXED_PATHS[p];
  if (fixed !== undefined) return fixed;
  // Archived messages keep messages.json's shape, month by month.
  if (/^coordination\/archive\/\d{4}-\d{2}\.json$/.test(p)) return 'messages.schema.json';
  const m = BUILDER_FILE.exec(p);
  if (m && !NOT_BUILDER_DIRS.has(m[1] ?? '')) return `${m[2]}.schema.json`;
  return null;
}

// ---------------------------------------------------------------------------
// Validation

/** Validate a parsed document against the schema for its path; [] if valid or no schema applies. */
export function validateDoc(repoPath: string, doc: unknown): Problem[] {
  const name = schemaNameFor(repoPath);
  return name === null ? [] : validateWith(name, doc, repoPath);
}

/** Validate the agent's own config file (/etc/buildcoord/agent.json). */
export function validateConfig(doc: unknown, file: string): Problem[] {
  return validateWith(CONFIG_SCHEMA, doc, file);
}

/** Validate against a named schema from schemas/. Throws if the schema itself is broken. */
export function validateWith(schemaName: string, doc: unknown, file: string): Problem[] {
  const validate = validatorFor(schemaName);
  if (validate(doc)) return [];
  return toProblems(validate.errors ?? [], file);
}

/** Parse JSON text; a syntax error becomes one Problem at "/" naming line:column. */
export function parseJson(file: string, text: string): { doc: unknown; problems: Problem[] } {
  try {
    return { doc: JSON.parse(text) as unknown, problems: [] };
  } catch (err) {
    return { doc: undefined, problems: [{ file, pointer: '/', message: describeSyntaxError(text, err) }] };
  }
}

/** Parse a coordination file and validate it against the schema for its path. */
export function parseAndValidate(repoPath: string, text: string): { doc: unknown; problems: Problem[] } {
  const parsed = parseJson(repoPath, text);
  if (parsed.problems.length > 0) return parsed;
  return { doc: parsed.doc, problems: validateDoc(repoPath, parsed.doc) };
}

// ---------------------------------------------------------------------------
// Human messages

interface PatternHint {
  /** What kind of value, e.g. "job id". */
  what: string;
  /** What it should look like. */
  expect: string;
}

// Keyed by the exact regex in the schemas. A pattern missing here still gets a
// message, just with the regex instead of words.
const PATTERN_HINTS: Readonly<Record<string, PatternHint>> = {
  '^job_[A-Za-z0-9_-]{1,80}$': {
    what: 'job id',
    expect: '"job_" followed by 1-80 letters, digits, "_" or "-" (e.g. "job_20250131_a1b2")',
  },
  '^msg_[A-Za-z0-9_-]{1,80}$': {
    what: 'message id',
    expect: '"msg_" followed by 1-80 letters, digits, "_" or "-" (e.g. "msg_20250131_a1b2")',
  },
  '^[a-z][a-z0-9-]{0,31}$': {
    what: 'job type',
    expect: 'lowercase letters, digits and "-", starting with a letter, at most 32 characters (e.g. "maven")',
  },
  '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$': {
    what: 'name',
    expect: '1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (e.g. "build1")',
  },
  '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$': {
    what: 'sender/recipient',
    expect: 'a builder name, a person or "all": letters, digits, ".", "_", "-", "@" or "+", starting with a letter or digit',
  },
  '^[0-9a-f]{7,40}$': {
    what: 'commit',
    expect: '7-40 lowercase hex digits (e.g. "3f2a9c1")',
  },
  '^[^\\s\\u0000-\\u001f\\u007f]*$': {
    what: 'branch',
    expect: 'a branch name without spaces or control characters (e.g. "main")',
  },
  '^[A-Za-z0-9._-]{1,64}$': {
    what: 'label name',
    expect: '1-64 letters, digits, ".", "_" or "-" (e.g. "arch")',
  },
  '^[^\\u0000-\\u001f\\u007f]*$': {
    what: 'single-line text',
    expect: 'one line, without newlines, tabs or other control characters',
  },
  '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$': {
    what: 'duration',
    expect: 'a number and a unit ms, s, m, h or d (e.g. "30s", "5m", "1.5h")',
  },
  '^/': {
    what: 'absolute path',
    expect: 'a path starting with "/" (e.g. "/usr/bin/make")',
  },
  // The same words as the date-time format, so a value failing both reads once.
  '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$': {
    what: 'date-time',
    expect: 'a UTC date and time ending in "Z" (e.g. "2025-01-31T12:00:00Z")',
  },
};

const FORMAT_HINTS: Readonly<Record<string, PatternHint>> = {
  'date-time': {
    what: 'date-time',
    expect: 'a UTC date and time ending in "Z" (e.g. "2025-01-31T12:00:00Z")',
  },
};

function toProblems(errors: readonly ErrorObject[], file: string): Problem[] {
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const described = describeError(e);
    if (described === null) continue;
    const key = `${described.pointer}\u0000${described.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ file, ...described });
  }
  return out;
}

function escapePointerSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

function describeError(e: ErrorObject): { pointer: string; message: string } | null {
  // The wrapper error of propertyNames adds nothing: the inner error that
  // follows it names the key and what is wrong with it.
  if (e.keyword === 'propertyNames') return null;
  const base = e.instancePath;
  const params = e.params as Record<string, unknown>;

  if (e.propertyName !== undefined) {
    // An error about an object key (propertyNames): point at the key itself.
    const pointer = `${base}/${escapePointerSegment(e.propertyName)}`;
    return { pointer, message: `invalid key ${quote(e.propertyName)}: ${keyMessage(e, params)}` };
  }

  const pointer = base === '' ? '/' : base;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String(params['additionalProperty']);
      const known = knownProperties(e.parentSchema);
      const guess = closest(field, known);
      const hint = guess === null ? '' : ` (did you mean "${guess}"?)`;
      return { pointer: `${base}/${escapePointerSegment(field)}`, message: `unknown field ${quote(field)}${hint}` };
    }
    case 'required':
      return { pointer, message: `missing field ${quote(String(params['missingProperty']))}` };
    default:
      return { pointer, message: valueMessage(e, params) };
  }
}

function keyMessage(e: ErrorObject, params: Record<string, unknown>): string {
  if (e.keyword === 'pattern') {
    const hint = PATTERN_HINTS[String(params['pattern'])];
    return hint ? `expected ${hint.expect}` : `does not match the pattern ${String(params['pattern'])}`;
  }
  return valueMessage(e, params);
}

function valueMessage(e: ErrorObject, params: Record<string, unknown>): string {
  const data: unknown = e.data;
  const got = describeValue(data);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  switch (e.keyword) {
    case 'type': {
      const types = String(params['type']).split(',');
      return `must be ${joinOr(types.map(typeName))}, got ${got}`;
    }
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? (params['allowedValues'] as unknown[]) : [];
      return `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}; got ${got}`;
    }
    case 'const':
      return `must be ${JSON.stringify(params['allowedValue'])}, got ${got}`;
    case 'pattern': {
      const pattern = String(params['pattern']);
      const hint = PATTERN_HINTS[pattern];
      if (hint) return `${got} does not match the ${hint.what} format: expected ${hint.expect}`;
      return `${got} does not match the pattern ${pattern}`;
    }
    case 'format': {
      const format = String(params['format']);
      const hint = FORMAT_HINTS[format];
      if (hint) return `${got} does not match the ${hint.what} format: expected ${hint.expect}`;
      return `${got} is not a valid ${format}`;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const min = parent['minimum'];
      const max = parent['maximum'];
      const kind = parent['type'] === 'integer' || (Array.isArray(parent['type']) && parent['type'].includes('integer')) ? 'an integer' : 'a number';
      if (typeof min === 'number' && typeof max === 'number') return `must be ${kind} from ${min} to ${max}, got ${got}`;
      const limit = String(params['limit']);
      switch (e.keyword) {
        case 'minimum':
          return `must be at least ${limit}, got ${got}`;
        case 'maximum':
          return `must be at most ${limit}, got ${got}`;
        case 'exclusiveMinimum':
          return `must be greater than ${limit}, got ${got}`;
        default:
          return `must be less than ${limit}, got ${got}`;
      }
    }
    case 'minLength': {
      const limit = Number(params['limit']);
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long, got ${charCount(data)}`;
    }
    case 'maxLength':
      return `must be at most ${String(params['limit'])} characters long, got ${charCount(data)}`;
    case 'minItems':
      return `must have at least ${String(params['limit'])} item${params['limit'] === 1 ? '' : 's'}`;
    case 'maxItems':
      return `must have at most ${String(params['limit'])} items, got ${Array.isArray(data) ? data.length : '?'}`;
    case 'uniqueItems': {
      const i = Number(params['i']);
      const j = Number(params['j']);
      const dup = Array.isArray(data) ? describeValue(data[i]) : '';
      return `must not repeat items: items ${Math.min(i, j)} and ${Math.max(i, j)} are both ${dup}`;
    }
    case 'minProperties':
      return `must have at least ${String(params['limit'])} field(s)`;
    case 'maxProperties':
      return `must have at most ${String(params['limit'])} fields`;
    default:
      return e.message ?? `is not valid (${e.keyword})`;
  }
}

function knownProperties(parentSchema: unknown): string[] {
  if (typeof parentSchema !== 'object' || parentSchema === null) return [];
  const props = (parentSchema as Record<string, unknown>)['properties'];
  return typeof props === 'object' && props !== null ? Object.keys(props) : [];
}

/** The known field a typo most likely meant, if one is close enough. */
function closest(field: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    if (k.toLowerCase() === field.toLowerCase()) return k;
    const d = editDistance(field, k);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  const allowed = Math.max(1, Math.min(3, Math.floor(field.length / 3)));
  return bestDistance <= allowed ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function typeName(t: string): string {
  switch (t) {
    case 'integer':
      return 'an integer';
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'null':
      return 'null';
    default:
      return `a ${t}`;
  }
}

function joinOr(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1] ?? ''}`;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string': {
      const s = JSON.stringify(v);
      return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
    }
    case 'number':
    case 'boolean':
      return String(v);
    case 'object':
      return 'an object';
    default:
      return 'nothing';
  }
}

function charCount(v: unknown): string {
  return typeof v === 'string' ? String([...v].length) : '?';
}

// ---------------------------------------------------------------------------
// JSON syntax errors with a position
//
// Node 20's JSON.parse often names no position ("Unexpected token '}', ... is
// not valid JSON"), so when it fails we rescan the text to find where and why.

interface SyntaxFault {
  offset: number;
  reason: string;
}

class Fault extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

function describeSyntaxError(text: string, err: unknown): string {
  const fault = locateSyntaxError(text, err);
  const { line, column } = lineColumn(text, fault.offset);
  return `invalid JSON at ${line}:${column}: ${fault.reason}`;
}

function locateSyntaxError(text: string, err: unknown): SyntaxFault {
  try {
    scanJson(text);
  } catch (e) {
    if (e instanceof Fault) return { offset: e.offset, reason: e.reason };
    // Only a nesting deep enough to exhaust the stack gets here.
  }
  const message = err instanceof Error ? err.message : String(err);
  const at = /position (\d+)/.exec(message);
  return { offset: at ? Number(at[1]) : 0, reason: message };
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

function showChar(text: string, i: number): string {
  if (i >= text.length) return 'end of file';
  const cp = text.codePointAt(i) ?? 0;
  return JSON.stringify(String.fromCodePoint(cp));
}

/** A strict RFC 8259 scanner that throws a Fault at the first error. */
function scanJson(text: string): void {
  let i = 0;
  const n = text.length;

  const fail = (reason: string, at = i): never => {
    throw new Fault(at, reason);
  };
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const unexpected = (expected: string): never =>
    i >= n ? fail(`unexpected end of file, expected ${expected}`) : fail(`unexpected ${showChar(text, i)}, expected ${expected}`);

  const str = (): void => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= n) fail('unterminated string (missing closing ")', start);
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c === 92) {
        const esc = text[i + 1];
        if (esc === undefined) fail('unterminated string (missing closing ")', start);
        if (esc === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('invalid \\u escape: expected 4 hex digits');
          i += 6;
        } else if ('"\\/bfnrt'.includes(esc ?? '')) {
          i += 2;
        } else {
          fail(`invalid escape \\${esc ?? ''} in string`);
        }
        continue;
      }
      if (c < 0x20) fail(c === 10 ? 'line break inside a string (write it as \\n, or close the string)' : 'control character inside a string (escape it, e.g. \\t)');
      i++;
    }
  };

  const num = (): void => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '-' || m[0] === '') fail('invalid number');
    i += m?.[0].length ?? 0;
    if (i < n && /[0-9.eE+-]/.test(text[i] ?? '')) fail('invalid number');
  };

  const value = (): void => {
    ws();
    if (i >= n) unexpected('a value');
    const c = text[i];
    if (c === '{') return obj();
    if (c === '[') return arr();
    if (c === '"') return str();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return num();
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    if (c === "'") fail('strings and field names must use double quotes (")');
    unexpected('a value');
  };

  const obj = (): void => {
    i++; // {
    ws();
    if (text[i] === '}') {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        if (text[i] === '}') fail('trailing comma before "}": remove the last ","');
        if (text[i] === "'") fail('field names must use double quotes (")');
        unexpected('a field name in double quotes');
      }
      str();
      ws();
      if (text[i] !== ':') unexpected('":" after the field name');
      i++;
      value();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return;
      }
      unexpected('"," or "}"');
    }
  };

  const arr = (): void => {
    i++; // [
    ws();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] === ']') fail('trailing comma before "]": remove the last ","');
      value();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return;
      }
      unexpected('"," or "]"');
    }
  };

  if (text.charCodeAt(0) === 0xfeff) fail('the file starts with a byte order mark (BOM): save it as UTF-8 without BOM');
  ws();
  if (i >= n) fail('the file is empty, expected a JSON value');
  value();
  ws();
  if (i < n) fail(`unexpected ${showChar(text, i)} after the end of the JSON document`);
  // Returning means the scanner accepted what JSON.parse rejected; the caller
  // then falls back to JSON.parse's own words.
}
