// The JSON Schemas, the sample files and the validation messages.
//
// Three things are kept honest here: every sample file in the repository
// validates and is written canonically; the schemas agree with types.ts (enums,
// required and optional fields); and a broken hand edit produces one line that
// points at the right place and says what to change.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
const addFormats = addFormatsModule.default;

import {
  PRECOMPILED_FILE,
  SCHEMA_NAMES,
  currentPrecompiled,
  formatProblem,
  newAjv,
  precompiledName,
  parseAndValidate,
  schemaFor,
  schemaNameFor,
  schemasDir,
  validateConfig,
  validateDoc,
  validateWith,
  validatorSource,
  type Precompiled,
  type Problem,
} from '../../agent/model/validate.js';
import { canonicalJson } from '../../agent/model/canonical.js';
import {
  BUILDER_STATES,
  JOB_STATUSES,
  MESSAGE_TYPES,
  type BuildConfigFile,
  type HealthDashboardFile,
  type HeartbeatFile,
  type Job,
  type JobsFile,
  type Lock,
  type LocksFile,
  type Message,
  type MessagesFile,
  type ProfileJob,
  type StatusFile,
} from '../../agent/model/types.js';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above the test');
    dir = parent;
  }
}

const ROOT = findRepoRoot();

type Json = Record<string, unknown>;

function readSchema(name: string): Json {
  return JSON.parse(readFileSync(join(schemasDir(), name), 'utf8')) as Json;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

// ---------------------------------------------------------------------------
// Sample files

interface Sample {
  /** Where the file is in this repository. */
  file: string;
  /** The coordination-repository path it stands for; null for the agent config. */
  repoPath: string | null;
  schema: string;
}

const SAMPLES: Sample[] = [
  { file: 'build1/status.json', repoPath: 'build1/status.json', schema: 'status.schema.json' },
  { file: 'build2/status.json', repoPath: 'build2/status.json', schema: 'status.schema.json' },
  { file: 'coordination/jobs.json', repoPath: 'coordination/jobs.json', schema: 'jobs.schema.json' },
  { file: 'coordination/locks.json', repoPath: 'coordination/locks.json', schema: 'locks.schema.json' },
  { file: 'coordination/messages.json', repoPath: 'coordination/messages.json', schema: 'messages.schema.json' },
  { file: 'shared/build_config.json', repoPath: 'shared/build_config.json', schema: 'build_config.schema.json' },
  { file: 'shared/health_dashboard.json', repoPath: 'shared/health_dashboard.json', schema: 'health_dashboard.schema.json' },
  // Heartbeats live on heartbeat/<builder> branches, so the sample is a fixture.
  { file: 'test/fixtures/heartbeat.sample.json', repoPath: 'build1/heartbeat.json', schema: 'heartbeat.schema.json' },
  { file: 'scripts/agent.example.json', repoPath: null, schema: 'agent-config.schema.json' },
];

describe('sample files', () => {
  for (const s of SAMPLES) {
    test(`${s.file} validates`, () => {
      const text = readFileSync(join(ROOT, s.file), 'utf8');
      if (s.repoPath === null) {
        const doc: unknown = JSON.parse(text);
        assert.deepEqual(validateConfig(doc, s.file).map(formatProblem), []);
      } else {
        assert.equal(schemaNameFor(s.repoPath), s.schema);
        const { problems } = parseAndValidate(s.repoPath, text);
        assert.deepEqual(problems.map(formatProblem), []);
      }
    });

    test(`${s.file} is canonical and names its schema first`, () => {
      const text = readFileSync(join(ROOT, s.file), 'utf8');
      const doc = JSON.parse(text) as Json;
      assert.equal(text, JSON.stringify(doc, null, 2) + '\n', '2-space indent and a trailing newline');
      assert.equal(Object.keys(doc)[0], '$schema', '"$schema" is the first key');
      const ref = doc['$schema'];
      assert.equal(typeof ref, 'string');
      const target = resolve(ROOT, dirname(s.file), String(ref));
      assert.equal(target, join(schemasDir(), s.schema), `"$schema" of ${s.file} points at schemas/${s.schema}`);
      if (s.repoPath !== null) {
        // Byte-identical to what the store writes, so the first transaction
        // does not rewrite a file it did not mean to change.
        assert.equal(canonicalJson(doc, schemaFor(s.repoPath)), text);
      }
    });
  }

  test('build_config.json has the release profile', () => {
    const cfg = JSON.parse(readFileSync(join(ROOT, 'shared/build_config.json'), 'utf8')) as BuildConfigFile;
    assert.deepEqual(cfg.defaults, { priority: 5, branch: 'main', timeout_seconds: 3600, retries: 0 });
    const steps = cfg.profiles['release']?.jobs.map((j) => [j.key, j.type, j.after ?? []]);
    assert.deepEqual(steps, [
      ['maven', 'maven', []],
      ['deb', 'deb', ['maven']],
      ['smoke', 'distcc-smoketest', ['deb']],
    ]);
  });
});

// ---------------------------------------------------------------------------
// The schemas themselves

/** Every object schema reachable from `node`, with its JSON pointer. */
function* objectSchemas(node: unknown, pointer = ''): Generator<[string, Json]> {
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) yield* objectSchemas(v, `${pointer}/${i}`);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const obj = node as Json;
  yield [pointer, obj];
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'enum' || k === 'const' || k === 'required') continue;
    if (k === 'properties' && typeof v === 'object' && v !== null) {
      for (const [name, sub] of Object.entries(v)) yield* objectSchemas(sub, `${pointer}/properties/${name}`);
      continue;
    }
    yield* objectSchemas(v, `${pointer}/${k}`);
  }
}

// JobResult is free-form on purpose: builds add their own fields.
const OPEN_OBJECTS = new Set(['jobs.schema.json#/$defs/job/properties/result']);

describe('schemas', () => {
  test('schemas/ holds exactly SCHEMA_NAMES', () => {
    const onDisk = readdirSync(schemasDir())
      .filter((f) => f.endsWith('.schema.json'))
      .sort();
    assert.deepEqual(onDisk, [...SCHEMA_NAMES].sort());
  });

  for (const name of SCHEMA_NAMES) {
    test(`${name} compiles in strict mode and is documented`, () => {
      // Compiles with the runtime's options (strict mode throws on unknown keywords, formats and types).
      assert.equal(typeof newAjv().compile(readSchema(name)), 'function');
      assert.ok(Array.isArray(validateWith(name, {}, 'probe.json')));
      // And is a valid 2020-12 schema: the runtime skips this check for speed.
      const meta = new Ajv2020({ strict: true, validateSchema: true });
      addFormats(meta);
      assert.ok(meta.validateSchema(readSchema(name)), JSON.stringify(meta.errors));

      const schema = readSchema(name);
      assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema');
      assert.equal(schema['$id'], `https://buildcoord.dev/schemas/${name}`);
      assert.equal(typeof schema['title'], 'string');
      assert.equal(typeof schema['description'], 'string');

      const rootProps = schema['properties'] as Json;
      assert.deepEqual(rootProps['$schema'] && (rootProps['$schema'] as Json)['type'], 'string', 'optional "$schema" string');
      assert.ok(!(schema['required'] as string[]).includes('$schema'));
      if ('version' in rootProps) {
        assert.equal((rootProps['version'] as Json)['const'], 1);
        assert.ok((schema['required'] as string[]).includes('version'));
      }

      for (const [pointer, node] of objectSchemas(schema)) {
        const props = node['properties'];
        if (typeof props !== 'object' || props === null) continue;
        const where = `${name}#${pointer}`;
        if (!OPEN_OBJECTS.has(where)) assert.equal(node['additionalProperties'], false, `${where} allows unknown fields`);
        for (const [field, sub] of Object.entries(props as Json)) {
          const s = sub as Json;
          assert.equal(typeof s['title'], 'string', `${where}/properties/${field} has no title`);
          assert.equal(typeof s['description'], 'string', `${where}/properties/${field} has no description`);
        }
      }
    });
  }

  test('priority says which end is high', () => {
    const job = (readSchema('jobs.schema.json')['$defs'] as Json)['job'] as Json;
    const priority = (job['properties'] as Json)['priority'] as Json;
    assert.equal(priority['type'], 'integer');
    assert.equal(priority['minimum'], 1);
    assert.equal(priority['maximum'], 10);
    assert.match(String(priority['description']), /1 is the highest priority, 10 the lowest/);
  });

  test('schemaFor gives the parsed schema for a path, or null', () => {
    assert.equal(schemaFor('coordination/jobs.json')?.['$id'], 'https://buildcoord.dev/schemas/jobs.schema.json');
    assert.equal(schemaFor('build7/heartbeat.json')?.['$id'], 'https://buildcoord.dev/schemas/heartbeat.schema.json');
    assert.equal(schemaFor('build1/logs/job_1.log'), null);
  });
});

// ---------------------------------------------------------------------------
// Schemas agree with types.ts

const T0 = '2025-01-31T12:00:00Z';

// Minimal values: the type checker insists every required field is here and
// nothing else is, so the schema's "required" must list exactly these keys.
const minimalJob: Job = {
  id: 'job_20250131T120000Z_a1b2c3d4e5',
  type: 'maven',
  priority: 5,
  source: null,
  branch: 'main',
  commit: null,
  description: 'nightly build',
  dependencies: [],
  assigned_to: null,
  status: 'queued',
  created_at: T0,
  created_by: 'build1',
  started_at: null,
  completed_at: null,
  attempt: 0,
  lease_expires_at: null,
};
// Full values: Required<> makes the type checker insist on every optional
// field too, so the schema's "properties" must list exactly these keys.
const fullJob: Required<Job> = {
  ...minimalJob,
  status: 'failed',
  assigned_to: 'build2',
  commit: '3f2a9c1d',
  started_at: T0,
  completed_at: '2025-01-31T12:05:00.123Z',
  attempt: 2,
  lease_expires_at: '2025-01-31T12:10:00Z',
  reclaims: 1,
  retried: 1,
  dependencies: ['job_20250131T110000Z_0000000000'],
  on: 'build2',
  labels: { arch: 'amd64' },
  timeout_seconds: 3600,
  retries: 1,
  cancel_requested: false,
  result: { summary: 'mvn exited 1', exit_code: 1, duration_seconds: 300, log: 'build2/logs/x.log', manifest: null, extra_field: { any: 'thing' } },
};
const minimalLock: Lock = { locked_by: 'build1', locked_at: T0, expires_at: '2025-01-31T12:10:00Z', token: 7 };
const fullLock: Required<Lock> = { ...minimalLock, note: 'deploying' };
const minimalMessage: Message = {
  id: 'msg_20250131T120000Z_a1b2c3d4e5',
  from: 'build1',
  to: 'all',
  type: 'warning',
  subject: 'build2 looks stale',
  body: 'Reclaimed job_x from build2.\nCheck its network.',
  timestamp: T0,
  read: false,
};
const fullMessage: Required<Message> = {
  ...minimalMessage,
  read_by: ['build2', 'alice@example.com'],
  ack_required: true,
  acked_by: ['build2'],
  in_reply_to: 'msg_20250131T110000Z_0000000000',
};
const minimalStatus: StatusFile = {
  server: 'build1',
  timestamp: T0,
  status: 'idle',
  current_job: null,
  last_build: null,
  system: { cpu_usage: null, memory_used_gb: null, disk_free_gb: null },
};
const fullStatus: Required<StatusFile> = {
  ...minimalStatus,
  $schema: '../schemas/status.schema.json',
  status: 'building',
  current_job: { id: minimalJob.id, branch: 'main', commit: null, started_at: T0, attempt: 1 },
  last_build: { id: 'job_20250131T110000Z_0000000000', status: 'completed', completed_at: T0, duration_seconds: 12.5, artifacts: ['build1/manifests/x.json'] },
  system: { cpu_usage: 250, memory_used_gb: 3.5, disk_free_gb: 100, load: [1, 0.5, 0.25] },
  agent_version: '0.1.0',
  labels: { arch: 'amd64' },
};
const minimalHeartbeat: HeartbeatFile = { server: 'build1', timestamp: T0, uptime_seconds: 60, healthy: true };
const fullHeartbeat: Required<HeartbeatFile> = {
  ...minimalHeartbeat,
  $schema: '../schemas/heartbeat.schema.json',
  degraded_reasons: [],
  system: { cpu_usage: 1, memory_used_gb: 1, disk_free_gb: 1, load: null },
  agent_version: '0.1.0',
  current_jobs: [minimalJob.id],
  leases: [{ id: minimalJob.id, attempt: 1, expires_at: '2025-01-31T12:10:00Z' }],
  distcc_mode: 'pump',
};
const minimalStep: ProfileJob = { key: 'maven', type: 'maven' };
const fullStep: Required<ProfileJob> = {
  ...minimalStep,
  priority: 3,
  after: ['other'],
  description: 'package',
  source: 'https://git.example.com/app.git',
  on: null,
  labels: {},
  timeout_seconds: null,
  retries: 2,
};
const minimalBuildConfig: BuildConfigFile = {
  version: 1,
  default_source: null,
  defaults: { priority: 5, branch: 'main', timeout_seconds: null, retries: 0 },
  profiles: { release: { jobs: [minimalStep] } },
};
const fullBuildConfig: Required<BuildConfigFile> = {
  ...minimalBuildConfig,
  $schema: '../schemas/build_config.schema.json',
  profiles: { release: { description: 'x', jobs: [fullStep, { ...minimalStep, key: 'other' }] } },
  control: { paused: true, paused_by: 'alice', paused_at: T0, builders: { build2: { paused: true, paused_by: null, paused_at: null } } },
};
const fullDashboard: Required<HealthDashboardFile> = {
  $schema: '../schemas/health_dashboard.schema.json',
  version: 1,
  builders: { build1: { state: 'unknown', health: 'stale', current_job: null, last_build: minimalJob.id } },
  queue: { queued: 1, running: 0, completed: 2, failed: 0, cancelled: 0 },
};

function defOf(schemaName: string, pointer: string): Json {
  let node: unknown = readSchema(schemaName);
  for (const part of pointer.split('/').filter(Boolean)) node = (node as Json)[part];
  return node as Json;
}

function sortedKeys(o: object): string[] {
  return Object.keys(o).sort();
}

describe('schemas agree with types.ts', () => {
  test('enums', () => {
    assert.deepEqual(defOf('jobs.schema.json', '$defs/job/properties/status')['enum'], [...JOB_STATUSES]);
    assert.deepEqual(defOf('messages.schema.json', '$defs/message/properties/type')['enum'], [...MESSAGE_TYPES]);
    assert.deepEqual(defOf('status.schema.json', 'properties/status')['enum'], [...BUILDER_STATES]);
    assert.deepEqual(defOf('health_dashboard.schema.json', 'properties/builders/additionalProperties/properties/state')['enum'], [
      ...BUILDER_STATES,
      'unknown',
    ]);
  });

  const shapes: Array<[string, string, object, object]> = [
    ['jobs.schema.json', '$defs/job', minimalJob, fullJob],
    ['locks.schema.json', '$defs/lock', minimalLock, fullLock],
    ['messages.schema.json', '$defs/message', minimalMessage, fullMessage],
    ['status.schema.json', '', minimalStatus, fullStatus],
    ['heartbeat.schema.json', '', minimalHeartbeat, fullHeartbeat],
    ['build_config.schema.json', '$defs/profileJob', minimalStep, fullStep],
    ['build_config.schema.json', '', minimalBuildConfig, fullBuildConfig],
  ];
  for (const [schemaName, pointer, minimal, full] of shapes) {
    test(`${schemaName}#/${pointer}: required and optional fields`, () => {
      const def = defOf(schemaName, pointer);
      assert.deepEqual([...(def['required'] as string[])].sort(), sortedKeys(minimal));
      assert.deepEqual(sortedKeys(def['properties'] as Json), sortedKeys(full));
    });
  }

  test('typed documents validate', () => {
    const jobs: JobsFile = { version: 1, jobs: [minimalJob, fullJob] };
    const locks: LocksFile = { version: 1, next_token: 8, locks: { deploy: minimalLock, 'db.migrate': fullLock } };
    const messages: MessagesFile = { version: 1, messages: [minimalMessage, fullMessage] };
    const docs: Array<[string, unknown]> = [
      ['coordination/jobs.json', jobs],
      ['coordination/locks.json', locks],
      ['coordination/messages.json', messages],
      ['build1/status.json', minimalStatus],
      ['build1/status.json', fullStatus],
      ['build1/heartbeat.json', minimalHeartbeat],
      ['build1/heartbeat.json', fullHeartbeat],
      ['shared/build_config.json', minimalBuildConfig],
      ['shared/build_config.json', fullBuildConfig],
      ['shared/health_dashboard.json', fullDashboard],
    ];
    for (const [path, doc] of docs) assert.deepEqual(validateDoc(path, doc).map(formatProblem), [], path);
  });
});

// ---------------------------------------------------------------------------
// Broken documents: one fault each, one readable problem each

const baseDocs: Record<string, unknown> = {
  'coordination/jobs.json': { version: 1, jobs: [minimalJob] } satisfies JobsFile,
  'coordination/locks.json': { version: 1, next_token: 2, locks: { deploy: minimalLock } } satisfies LocksFile,
  'coordination/messages.json': { version: 1, messages: [minimalMessage] } satisfies MessagesFile,
  'build1/status.json': minimalStatus,
  'build1/heartbeat.json': minimalHeartbeat,
  'shared/build_config.json': minimalBuildConfig,
  'shared/health_dashboard.json': fullDashboard,
};

const exampleConfig = JSON.parse(readFileSync(join(ROOT, 'scripts/agent.example.json'), 'utf8')) as Json;

interface Broken {
  name: string;
  path: string;
  /** Edits a deep copy of the valid base document. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the documents are deliberately broken
  edit: (doc: any) => void;
  pointer: string;
  message: RegExp;
}

const BROKEN: Broken[] = [
  {
    name: 'unknown field (a typo) in a job',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].priorty = 1),
    pointer: '/jobs/0/priorty',
    message: /^unknown field "priorty" \(did you mean "priority"\?\)$/,
  },
  {
    name: 'unknown field at the root',
    path: 'coordination/jobs.json',
    edit: (d) => (d.comment = 'hi'),
    pointer: '/comment',
    message: /^unknown field "comment"$/,
  },
  { name: 'priority 0', path: 'coordination/jobs.json', edit: (d) => (d.jobs[0].priority = 0), pointer: '/jobs/0/priority', message: /from 1 to 10, got 0/ },
  { name: 'priority 11', path: 'coordination/jobs.json', edit: (d) => (d.jobs[0].priority = 11), pointer: '/jobs/0/priority', message: /from 1 to 10, got 11/ },
  { name: 'priority 1.5', path: 'coordination/jobs.json', edit: (d) => (d.jobs[0].priority = 1.5), pointer: '/jobs/0/priority', message: /must be an integer, got 1\.5/ },
  {
    name: 'priority as a string',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].priority = '5'),
    pointer: '/jobs/0/priority',
    message: /must be an integer, got "5"/,
  },
  {
    name: 'bad commit',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].commit = 'HEAD'),
    pointer: '/jobs/0/commit',
    message: /"HEAD" does not match the commit format: expected 7-40 lowercase hex digits/,
  },
  {
    name: 'bad job status',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].status = 'done'),
    pointer: '/jobs/0/status',
    message: /must be one of "queued", "running", "completed", "failed", "cancelled"; got "done"/,
  },
  {
    name: 'missing field',
    path: 'coordination/jobs.json',
    edit: (d) => delete d.jobs[0].description,
    pointer: '/jobs/0',
    message: /^missing field "description"$/,
  },
  { name: 'missing version', path: 'coordination/jobs.json', edit: (d) => delete d.version, pointer: '/', message: /^missing field "version"$/ },
  { name: 'version 2', path: 'coordination/jobs.json', edit: (d) => (d.version = 2), pointer: '/version', message: /^must be 1, got 2$/ },
  {
    name: 'bad date-time',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].created_at = 'yesterday'),
    pointer: '/jobs/0/created_at',
    message: /"yesterday" does not match the date-time format: expected a UTC date and time ending in "Z"/,
  },
  {
    name: 'date-time with an offset instead of Z',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].started_at = '2025-01-31T14:00:00+02:00'),
    pointer: '/jobs/0/started_at',
    message: /does not match the date-time format/,
  },
  {
    name: 'impossible date',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].lease_expires_at = '2025-02-30T00:00:00Z'),
    pointer: '/jobs/0/lease_expires_at',
    message: /does not match the date-time format/,
  },
  {
    name: 'bad job id',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].id = 'job 1'),
    pointer: '/jobs/0/id',
    message: /"job 1" does not match the job id format: expected "job_" followed by/,
  },
  {
    name: 'bad job type',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].type = 'Maven'),
    pointer: '/jobs/0/type',
    message: /"Maven" does not match the job type format: expected lowercase letters/,
  },
  {
    name: 'branch with a space',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].branch = 'my branch'),
    pointer: '/jobs/0/branch',
    message: /does not match the branch format/,
  },
  { name: 'empty branch', path: 'coordination/jobs.json', edit: (d) => (d.jobs[0].branch = ''), pointer: '/jobs/0/branch', message: /^must not be empty$/ },
  {
    name: 'duplicate dependency',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].dependencies = ['job_a', 'job_a']),
    pointer: '/jobs/0/dependencies',
    message: /must not repeat items: items 0 and 1 are both "job_a"/,
  },
  { name: 'negative attempt', path: 'coordination/jobs.json', edit: (d) => (d.jobs[0].attempt = -1), pointer: '/jobs/0/attempt', message: /must be at least 0, got -1/ },
  {
    name: 'assigned_to not a builder name',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].assigned_to = 'build 1'),
    pointer: '/jobs/0/assigned_to',
    message: /"build 1" does not match the name format/,
  },
  {
    name: 'bad label name',
    path: 'coordination/jobs.json',
    edit: (d) => (d.jobs[0].labels = { 'cpu arch': 'amd64' }),
    pointer: '/jobs/0/labels/cpu arch',
    message: /^invalid key "cpu arch": expected 1-64 letters/,
  },
  {
    name: 'bad lock name',
    path: 'coordination/locks.json',
    edit: (d) => (d.locks['-deploy'] = d.locks.deploy),
    pointer: '/locks/-deploy',
    message: /^invalid key "-deploy": expected 1-64 letters, digits, "\.", "_" or "-", starting with a letter or digit/,
  },
  { name: 'lock token 0', path: 'coordination/locks.json', edit: (d) => (d.locks.deploy.token = 0), pointer: '/locks/deploy/token', message: /must be at least 1, got 0/ },
  { name: 'next_token 0', path: 'coordination/locks.json', edit: (d) => (d.next_token = 0), pointer: '/next_token', message: /must be at least 1, got 0/ },
  {
    name: 'bad message type',
    path: 'coordination/messages.json',
    edit: (d) => (d.messages[0].type = 'chat'),
    pointer: '/messages/0/type',
    message: /must be one of "info", "warning", "error", "request"; got "chat"/,
  },
  {
    name: 'newline in subject',
    path: 'coordination/messages.json',
    edit: (d) => (d.messages[0].subject = 'first line\nsecond line'),
    pointer: '/messages/0/subject',
    message: /"first line\\nsecond line" does not match the single-line text format: expected one line/,
  },
  {
    name: 'subject too long',
    path: 'coordination/messages.json',
    edit: (d) => (d.messages[0].subject = 'x'.repeat(201)),
    pointer: '/messages/0/subject',
    message: /^must be at most 200 characters long, got 201$/,
  },
  {
    name: 'bad message id',
    path: 'coordination/messages.json',
    edit: (d) => (d.messages[0].id = 'job_1'),
    pointer: '/messages/0/id',
    message: /does not match the message id format: expected "msg_"/,
  },
  {
    name: 'bad builder status',
    path: 'build1/status.json',
    edit: (d) => (d.status = 'busy'),
    pointer: '/status',
    message: /must be one of "idle", "building", "failed", "success", "paused", "offline"; got "busy"/,
  },
  {
    name: 'status: wrong type for a nullable number',
    path: 'build1/status.json',
    edit: (d) => (d.system.cpu_usage = '12%'),
    pointer: '/system/cpu_usage',
    message: /^must be a number or null, got "12%"$/,
  },
  {
    name: 'status: missing field in a nested object',
    path: 'build1/status.json',
    edit: (d) => delete d.system.disk_free_gb,
    pointer: '/system',
    message: /^missing field "disk_free_gb"$/,
  },
  { name: 'status: not an object', path: 'build1/status.json', edit: (d) => (d.system = []), pointer: '/system', message: /^must be an object, got an array$/ },
  {
    name: 'heartbeat: bad distcc mode',
    path: 'build1/heartbeat.json',
    edit: (d) => (d.distcc_mode = 'fast'),
    pointer: '/distcc_mode',
    message: /must be one of "pump", "pump-broken", "distcc", "local", null; got "fast"/,
  },
  {
    name: 'build config: default priority out of range',
    path: 'shared/build_config.json',
    edit: (d) => (d.defaults.priority = 0),
    pointer: '/defaults/priority',
    message: /from 1 to 10, got 0/,
  },
  {
    name: 'build config: unknown field in a profile step',
    path: 'shared/build_config.json',
    edit: (d) => (d.profiles.release.jobs[0].depends_on = ['x']),
    pointer: '/profiles/release/jobs/0/depends_on',
    message: /^unknown field "depends_on"$/,
  },
  {
    name: 'dashboard: negative count',
    path: 'shared/health_dashboard.json',
    edit: (d) => (d.queue.failed = -1),
    pointer: '/queue/failed',
    message: /must be at least 0, got -1/,
  },
];

function onlyProblem(problems: Problem[], label: string): Problem {
  assert.equal(problems.length, 1, `${label}: expected exactly one problem, got ${JSON.stringify(problems.map(formatProblem), null, 2)}`);
  return problems[0]!;
}

function assertReadable(p: Problem): void {
  // No ajv jargon and no raw regular expressions for the fields we know.
  assert.doesNotMatch(p.message, /must match|must NOT|\^\[|\{0,|\$$/, `not readable: ${p.message}`);
}

describe('broken documents', () => {
  test('the base documents are valid', () => {
    for (const [path, doc] of Object.entries(baseDocs)) assert.deepEqual(validateDoc(path, doc).map(formatProblem), [], path);
  });

  for (const b of BROKEN) {
    test(b.name, () => {
      const base = baseDocs[b.path];
      assert.ok(base !== undefined, `no base document for ${b.path}`);
      const doc = clone(base);
      b.edit(doc);
      const p = onlyProblem(validateDoc(b.path, doc), b.name);
      assert.equal(p.file, b.path);
      assert.equal(p.pointer, b.pointer);
      assert.match(p.message, b.message);
      assertReadable(p);
      assert.equal(formatProblem(p), `${b.path}: ${b.pointer}: ${p.message}`);
    });
  }

  test('the same faults read the same through parseAndValidate', () => {
    const doc = clone(baseDocs['coordination/jobs.json']) as JobsFile;
    doc.jobs[0]!.priority = 11;
    const { doc: parsed, problems } = parseAndValidate('coordination/jobs.json', JSON.stringify(doc, null, 2));
    assert.deepEqual(parsed, doc);
    assert.deepEqual(problems.map(formatProblem), ['coordination/jobs.json: /jobs/0/priority: must be an integer from 1 to 10, got 11']);
  });

  test('several faults are all reported', () => {
    const doc = clone(baseDocs['coordination/jobs.json']) as Json & { jobs: Json[] };
    doc.jobs[0]!['priority'] = 0;
    doc.jobs[0]!['status'] = 'done';
    delete doc.jobs[0]!['branch'];
    const pointers = validateDoc('coordination/jobs.json', doc).map((p) => p.pointer);
    assert.deepEqual(pointers.sort(), ['/jobs/0', '/jobs/0/priority', '/jobs/0/status']);
  });

  test('a whole document of the wrong type', () => {
    const p = onlyProblem(validateDoc('coordination/locks.json', ['not', 'an', 'object']), 'array root');
    assert.equal(formatProblem(p), 'coordination/locks.json: /: must be an object, got an array');
  });
});

describe('validators compiled by the build', () => {
  // `npm run build` compiled them (scripts/compile-schemas.mjs); the suite runs on that build.
  const pre = createRequire(import.meta.url)(`../../agent/model/${PRECOMPILED_FILE}`) as Precompiled;
  const runtime = newAjv();

  test('every schema is served by its compiled validator, not the compiler', () => {
    for (const name of SCHEMA_NAMES) assert.equal(validatorSource(name), 'precompiled', name);
  });

  test('compiled and run-time validators report the same errors for every broken document', () => {
    const cases = [...BROKEN.map((b) => ({ name: b.name, path: b.path, doc: ((d) => (b.edit(d), d))(clone(baseDocs[b.path])) })), ...Object.entries(baseDocs).map(([path, doc]) => ({ name: `valid ${path}`, path, doc }))];
    for (const c of cases) {
      const name = schemaNameFor(c.path)!;
      const compiled = pre.validators[precompiledName(name)]!;
      const live = runtime.getSchema(readSchema(name)['$id'] as string) ?? runtime.compile(readSchema(name));
      assert.equal(compiled(c.doc), live(c.doc), c.name);
      assert.deepEqual(compiled.errors ?? null, live.errors ?? null, c.name);
    }
  });

  test('a schema edited after the build is not judged by its stale compiled validator', () => {
    const name = 'jobs.schema.json';
    const text = readFileSync(join(schemasDir(), name), 'utf8');
    assert.equal(typeof currentPrecompiled(pre, name, text), 'function', 'the built text');
    assert.equal(currentPrecompiled(pre, name, text.replace('"maximum": 10', '"maximum": 20')), undefined, 'an edited text');
    assert.equal(currentPrecompiled(null, name, text), undefined, 'no compiled module');
  });
});

describe('agent config', () => {
  test('the example is valid and a minimal config is valid', () => {
    assert.deepEqual(validateConfig(exampleConfig, 'agent.example.json'), []);
    assert.deepEqual(validateConfig({ builder: 'build1' }, '/etc/buildcoord/agent.json'), []);
  });

  const FILE = '/etc/buildcoord/agent.json';
  const cases: Array<[string, (c: Json) => void, string, RegExp]> = [
    ['missing builder', (c) => delete c['builder'], '/', /^missing field "builder"$/],
    ['bad duration', (c) => (c['poll'] = '30 seconds'), '/poll', /"30 seconds" does not match the duration format: expected a number and a unit/],
    ['concurrency 0', (c) => (c['concurrency'] = 0), '/concurrency', /from 1 to 64, got 0/],
    ['bad log level', (c) => (c['log_level'] = 'verbose'), '/log_level', /must be one of "trace", "debug", "info", "warn", "error"; got "verbose"/],
    ['unknown field', (c) => (c['heartbeat_interval'] = '1m'), '/heartbeat_interval', /^unknown field "heartbeat_interval"/],
    ['relative command', (c) => (c['types'] = { docs: { command: 'make', args: [] } }), '/types/docs/command', /does not match the absolute path format/],
    ['max_reclaims 101', (c) => (c['max_reclaims'] = 101), '/max_reclaims', /from 1 to 100, got 101/],
    ['typo in maven', (c) => (c['maven'] = { allowed_goal: ['package'] }), '/maven/allowed_goal', /^unknown field "allowed_goal" \(did you mean "allowed_goals"\?\)$/],
    ['empty maven goal', (c) => (c['maven'] = { allowed_goals: [''] }), '/maven/allowed_goals/0', /^must not be empty$/],
  ];
  for (const [name, edit, pointer, message] of cases) {
    test(name, () => {
      const cfg = clone(exampleConfig);
      edit(cfg);
      const p = onlyProblem(validateConfig(cfg, FILE), name);
      assert.equal(p.file, FILE);
      assert.equal(p.pointer, pointer);
      assert.match(p.message, message);
      assertReadable(p);
    });
  }
});

// ---------------------------------------------------------------------------
// JSON syntax errors

describe('JSON syntax errors', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['trailing comma', '{\n  "version": 1,\n  "jobs": [],\n}\n', /^invalid JSON at 4:1: trailing comma/],
    ['missing value', '{\n  "version": ,\n  "jobs": []\n}\n', /^invalid JSON at 2:14: unexpected ",", expected a value$/],
    ['missing comma', '{\n  "version": 1\n  "jobs": []\n}\n', /^invalid JSON at 3:3: unexpected "\\"", expected "," or "}"$/],
    ['truncated file', '{\n  "version": 1,\n  "jobs": [\n', /^invalid JSON at 4:1: unexpected end of file/],
    ['single quotes', "{'version': 1}", /^invalid JSON at 1:2: .*double quotes/],
    ['line break in a string', '{"subject": "a\nb"}', /^invalid JSON at 1:15: line break inside a string/],
    ['empty file', '', /^invalid JSON at 1:1: the file is empty/],
    ['byte order mark', '\ufeff{"version": 1, "jobs": []}', /^invalid JSON at 1:1: .*byte order mark/],
    ['garbage after the document', '{"version": 1, "jobs": []}\n}', /^invalid JSON at 2:1: unexpected "}" after the end/],
  ];
  for (const [name, text, message] of cases) {
    test(name, () => {
      assert.throws(() => JSON.parse(text), SyntaxError);
      const { doc, problems } = parseAndValidate('coordination/jobs.json', text);
      assert.equal(doc, undefined);
      const p = onlyProblem(problems, name);
      assert.equal(p.pointer, '/');
      assert.match(p.message, message);
      assert.match(formatProblem(p), /^coordination\/jobs\.json: \/: invalid JSON at \d+:\d+: /);
    });
  }
});

// ---------------------------------------------------------------------------
// Paths and formatting

describe('paths and formatting', () => {
  test('schemaNameFor', () => {
    const table: Array<[string, string | null]> = [
      ['coordination/jobs.json', 'jobs.schema.json'],
      ['coordination/locks.json', 'locks.schema.json'],
      ['coordination/messages.json', 'messages.schema.json'],
      ['shared/build_config.json', 'build_config.schema.json'],
      ['shared/health_dashboard.json', 'health_dashboard.schema.json'],
      ['build1/status.json', 'status.schema.json'],
      ['./build2/status.json', 'status.schema.json'],
      ['gpu-box.lab_3/heartbeat.json', 'heartbeat.schema.json'],
      ['shared/status.json', null],
      ['coordination/heartbeat.json', null],
      ['schemas/status.json', null],
      ['scripts/status.json', null],
      ['build1/logs/job_1.log', null],
      ['build1/manifests/job_1.json', null],
      ['build1/sub/status.json', null],
      ['.hidden/status.json', null],
      ['coordination/other.json', null],
      ['README.md', null],
    ];
    for (const [path, want] of table) assert.equal(schemaNameFor(path), want, path);
  });

  test('a path without a schema validates as nothing to check', () => {
    assert.deepEqual(validateDoc('build1/manifests/job_1.json', { anything: true }), []);
    assert.deepEqual(parseAndValidate('build1/manifests/job_1.json', '{"anything": true}').problems, []);
  });

  test('formatProblem', () => {
    assert.equal(formatProblem({ file: 'coordination/jobs.json', pointer: '/jobs/0/priority', message: 'x' }), 'coordination/jobs.json: /jobs/0/priority: x');
    assert.equal(formatProblem({ file: 'a.json', pointer: '', message: 'y' }), 'a.json: /: y');
    assert.equal(formatProblem({ file: 'a.json', pointer: '/', message: 'y' }), 'a.json: /: y');
  });

  test('pointers escape "/" and "~" in keys', () => {
    const doc = clone(baseDocs['coordination/locks.json']) as Json & { locks: Json };
    doc.locks['a/b~c'] = minimalLock;
    const p = onlyProblem(validateDoc('coordination/locks.json', doc), 'escaped key');
    assert.equal(p.pointer, '/locks/a~1b~0c');
  });

  test('schemasDir finds the schemas of this package', () => {
    assert.equal(schemasDir(), join(ROOT, 'schemas'));
  });
});
