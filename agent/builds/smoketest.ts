// The `distcc-smoketest` job type (and doctor's per-host compiler check):
// compile one small C file on every configured distcc host, prove from
// distcc's own verbose log that the compile ran THERE, and say which
// compiler did it.
//
// Which compiler ran is read from the object file, not asked for: in plain
// distcc mode the client preprocesses locally, so macros such as __VERSION__
// or __x86_64__ in the output are the LOCAL compiler's. What the remote
// compiler itself writes is the object: its ELF header (the target machine)
// and its .comment section (cc1's .ident, e.g. "GCC: (Debian 12.2.0-14)
// 12.2.0"). Both are compared with the same file compiled locally; a host
// whose compiler differs would produce different code for the same build.

import { mkdir, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDistccHosts, probeTcp, type HostSpec } from './distcc.js';
import { redactText, type ProcessRunner } from './runner.js';

export interface SmoketestHost {
  /** The host as written in DISTCC_HOSTS. */
  host: string;
  ok: boolean;
  /** The remote compiler's identification from the object's .comment, e.g. "GCC: (Debian 12.2.0-14) 12.2.0"; null if no object came back. */
  compiler_version: string | null;
  /** The target the remote compiler produced code for (from the ELF header), e.g. "x86_64". */
  target?: string | null;
  /** Why it passed (the distcc log line that proves where it ran) or failed, for a person. */
  reason: string;
}

export interface SmoketestResult {
  ok: boolean;
  /** One line for the job's summary. */
  summary: string;
  /** This builder's own compiler, compiled the same way: what every host is compared with. */
  local: { compiler_version: string | null; target: string | null; dumpmachine: string | null };
  hosts: SmoketestHost[];
  /** Entries of DISTCC_HOSTS that are not TCP hosts (localhost, ssh, options): not tested. */
  skipped: Array<{ host: string; reason: string }>;
}

export interface SmoketestOptions {
  /** The compiler name given to distcc (default gcc; distcc rewrites it to e.g. x86_64-linux-gnu-gcc). */
  compiler?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Per compile (default 60 s). */
  timeoutMs?: number;
  /** TCP connect timeout for the reachability probe (default 1500 ms). */
  connectTimeoutMs?: number;
  /** The job's redactor: every line written to logFile, and every output the result quotes, goes through it. */
  redact?: (line: string) => string;
}

const PROBE_C = `/* buildcoord distcc smoke test */
const char buildcoord_probe_version[] = "BUILDCOORD_PROBE_VERSION=" __VERSION__;
int buildcoord_probe(int x) { return 3 * x + 1; }
`;

// ---------------------------------------------------------------- ELF

export interface ObjectInfo {
  bits: 32 | 64;
  endian: 'le' | 'be';
  /** e_machine. */
  machine: number;
  /** A name for e_machine (x86_64, aarch64, ...), or "machine N". */
  target: string;
  /** NUL-separated strings of the .comment section (each compiler that touched the object adds one). */
  comments: string[];
}

const MACHINES: Record<number, string> = {
  3: 'i386',
  8: 'mips',
  20: 'powerpc',
  21: 'powerpc64',
  22: 's390',
  40: 'arm',
  62: 'x86_64',
  183: 'aarch64',
  243: 'riscv',
  258: 'loongarch',
};

/** The target and compiler identification of an ELF object file, or null if it is not one. */
export function readObjectInfo(buf: Buffer): ObjectInfo | null {
  if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) return null;
  const bits = buf[4] === 2 ? 64 : buf[4] === 1 ? 32 : null;
  const endian = buf[5] === 1 ? 'le' : buf[5] === 2 ? 'be' : null;
  if (!bits || !endian) return null;
  const u16 = (o: number) => (endian === 'le' ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (endian === 'le' ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const word = (o: number) => (bits === 64 ? Number(endian === 'le' ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o)) : u32(o));
  const machine = u16(18);
  let target = MACHINES[machine] ?? `machine ${machine}`;
  if (machine === 243 || machine === 258) target += String(bits);
  if (machine === 21 && endian === 'le') target = 'powerpc64le';
  if (machine === 22 && bits === 64) target = 's390x';
  const comments: string[] = [];
  try {
    const shoff = word(bits === 64 ? 0x28 : 0x20);
    const shentsize = u16(bits === 64 ? 0x3a : 0x2e);
    const shnum = u16(bits === 64 ? 0x3c : 0x30);
    const shstrndx = u16(bits === 64 ? 0x3e : 0x32);
    const section = (i: number) => {
      const base = shoff + i * shentsize;
      return bits === 64
        ? { name: u32(base), offset: word(base + 24), size: word(base + 32) }
        : { name: u32(base), offset: u32(base + 16), size: u32(base + 20) };
    };
    if (shoff > 0 && shnum > 0 && shstrndx < shnum && shoff + shnum * shentsize <= buf.length) {
      const names = section(shstrndx);
      for (let i = 0; i < shnum; i++) {
        const s = section(i);
        const start = names.offset + s.name;
        const end = buf.indexOf(0, start);
        if (end < 0 || buf.toString('latin1', start, end) !== '.comment') continue;
        if (s.offset + s.size > buf.length) break;
        for (const text of buf.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
          if (text.trim()) comments.push(text.trim());
        }
      }
    }
  } catch {
    /* a truncated object: no comments */
  }
  return { bits, endian, machine, target, comments };
}

/** The compiler's own identification among an object's .comment strings. */
export function compilerIdent(info: ObjectInfo | null): string | null {
  if (!info || info.comments.length === 0) return null;
  return info.comments.find((c) => /^GCC:|clang version/i.test(c)) ?? info.comments.join('; ');
}

// ---------------------------------------------------------------- helpers

/** host:port as distcc's log names it, for matching (the /LIMIT and ,options dropped). */
function hostKey(h: HostSpec): string {
  return `${h.host}:${h.port}`;
}

/** Whether a host as distcc's log names it (its DISTCC_HOSTS token) is h. */
function logNamesHost(token: string, h: HostSpec): boolean {
  try {
    const [p] = parseDistccHosts(token);
    return p?.kind === 'tcp' && p.host === h.host && p.port === h.port;
  } catch {
    return false;
  }
}

/** The line of distcc's verbose log proving the compile ran on h, if there is one. */
export function remoteProof(clientLog: string, file: string, h: HostSpec): string | null {
  for (const line of clientLog.split('\n')) {
    const c = /\bcompile (\S+) on (\S+) completed ok\b/.exec(line);
    if (c && c[1] === file && c[2] !== 'localhost' && logNamesHost(c[2]!, h)) return line.replace(/^distcc\[\d+\]\s*/, '').trim();
  }
  return null;
}

/** Why distcc did not run it remotely, from its log: the first warning or error worth showing. */
function clientFailure(clientLog: string): string | null {
  const lines = clientLog.split('\n');
  const pick = (re: RegExp) => lines.find((l) => re.test(l));
  const line =
    pick(/\(dcc_\w+\) (ERROR|Warning): (?!.*remote compilation of .* failed, retrying locally)/) ??
    pick(/ERROR|failed|refused|timed out|not in .*whitelist/i);
  return line ? line.replace(/^distcc\[\d+\]\s*/, '').trim().slice(0, 240) : null;
}

async function capture(runner: ProcessRunner, dir: string, name: string, command: string, args: string[], env: Record<string, string | undefined>, opts: { signal?: AbortSignal; timeoutMs: number; redact: (line: string) => string }) {
  const logFile = join(dir, `${name}.out`);
  // Redacted as it is written: this output is quoted in the job's log and in the hosts' reasons.
  const r = await runner({ command, args, cwd: dir, env, logFile, timeoutMs: opts.timeoutMs, signal: opts.signal, graceMs: 2000, redact: opts.redact });
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return { r, text };
}

// ---------------------------------------------------------------- the test

/**
 * Compiles a small C file on every TCP host of `hosts` (DISTCC_HOSTS syntax,
 * or parsed hosts), one host at a time per compile (DISTCC_HOSTS set to that
 * host alone, no local fallback), and compares each remote compiler with the
 * local one. Writes everything distcc said to logFile, each line through
 * opts.redact (the job's log is pushed); makes and removes its
 * own directory under workDir. Never throws for a host's failure: that host
 * is listed with ok false and the reason.
 */
export async function runSmoketest(
  hosts: string | HostSpec[],
  workDir: string,
  logFile: string,
  runner: ProcessRunner,
  opts: SmoketestOptions = {},
): Promise<SmoketestResult> {
  const env: Record<string, string | undefined> = { ...(opts.env ?? process.env) };
  // The client's own settings must not leak in: one host at a time, no local fallback.
  for (const k of Object.keys(env)) if (k.startsWith('DISTCC_') || k === 'INCLUDE_SERVER_PORT') delete env[k];
  const compiler = opts.compiler ?? 'gcc';
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const redact = opts.redact ?? ((l: string) => l);
  // The one way into logFile: notes quote program output too, so nothing reaches the pushed log around the redactor.
  const write = (text: string) => appendFile(logFile, redactText(text, redact));
  const note = (line: string) => write(`[buildcoord] ${line}\n`);

  let specs: HostSpec[];
  try {
    specs = typeof hosts === 'string' ? parseDistccHosts(hosts) : hosts;
  } catch (e) {
    const summary = `distcc hosts cannot be read: ${(e as Error).message}`;
    await note(summary);
    return { ok: false, summary, local: { compiler_version: null, target: null, dumpmachine: null }, hosts: [], skipped: [] };
  }
  const tcp = specs.filter((h) => h.kind === 'tcp');
  const skipped = specs
    .filter((h) => h.kind !== 'tcp' && h.kind !== 'option')
    .map((h) => ({ host: h.raw, reason: h.kind === 'localhost' ? 'localhost compiles here, not on a distcc server' : `${h.kind} hosts are not tested (only TCP hosts)` }));

  await mkdir(workDir, { recursive: true });
  const dir = await mkdtemp(join(workDir, 'distcc-smoketest-'));
  try {
    await writeFile(join(dir, 'probe.c'), PROBE_C);
    await note(`distcc smoke test: ${tcp.length} TCP host(s)${skipped.length ? `, skipping ${skipped.map((s) => s.host).join(' ')}` : ''}; compiler ${compiler}`);

    // The reference: the same file compiled by this builder's compiler.
    const localRun = await capture(runner, dir, 'local', compiler, ['-c', 'probe.c', '-o', 'local.o'], env, { signal: opts.signal, timeoutMs, redact });
    const dm = await capture(runner, dir, 'dumpmachine', compiler, ['-dumpmachine'], env, { signal: opts.signal, timeoutMs: 10_000, redact });
    const localInfo = localRun.r.exitCode === 0 ? readObjectInfo(await readFile(join(dir, 'local.o')).catch(() => Buffer.alloc(0))) : null;
    const local = {
      compiler_version: compilerIdent(localInfo),
      target: localInfo?.target ?? null,
      dumpmachine: dm.r.exitCode === 0 ? dm.text.trim().split('\n')[0] ?? null : null,
    };
    await note(`local compiler: ${local.compiler_version ?? 'unknown'} for ${local.target ?? '?'} (-dumpmachine ${local.dumpmachine ?? '?'})${localRun.r.exitCode === 0 ? '' : `; the local compile ${localRun.r.summary}: ${localRun.text.trim().split('\n').slice(-3).join(' / ')}`}`);

    const results = await Promise.all(
      tcp.map(async (h, i): Promise<{ res: SmoketestHost; log: string }> => {
        const probe = await probeTcp(h.host!, h.port!, opts.connectTimeoutMs ?? 1500);
        if (!probe.ok) {
          return { res: { host: h.raw, ok: false, compiler_version: null, target: null, reason: `${hostKey(h)} does not answer (${probe.why}): is distccd running there and listening on that port?` }, log: '' };
        }
        const distccDir = join(dir, `distcc-dir-${i}`);
        await mkdir(distccDir, { recursive: true });
        const clientLog = join(dir, `client-${i}.log`);
        const obj = `host-${i}.o`;
        const hostEnv = {
          ...env,
          // Plain mode for this one host: ,cpp would need an include server.
          DISTCC_HOSTS: h.raw.split(',').filter((o) => o !== 'cpp').join(','),
          DISTCC_VERBOSE: '1',
          DISTCC_LOG: clientLog,
          DISTCC_FALLBACK: '0',
          DISTCC_SKIP_LOCAL_RETRY: '1',
          DISTCC_BACKOFF_PERIOD: '0',
          DISTCC_DIR: distccDir,
          DISTCC_IO_TIMEOUT: String(Math.max(5, Math.round(timeoutMs / 1000))),
        };
        const run = await capture(runner, dir, `host-${i}`, 'distcc', [compiler, '-c', 'probe.c', '-o', obj], hostEnv, { signal: opts.signal, timeoutMs, redact });
        // distcc writes this log itself, past the runner's redactor, and its lines are quoted in the reasons.
        const log = redactText(await readFile(clientLog, 'utf8').catch(() => ''), redact);
        const proof = remoteProof(log, 'probe.c', h);
        const fullLog = `--- ${h.raw}: distcc ${compiler} -c probe.c (${run.r.summary})\n${run.text}${log}`;
        if (run.r.exitCode !== 0 || !proof) {
          const why = clientFailure(log) ?? (run.text.trim().split('\n').pop() || run.r.summary);
          return {
            res: { host: h.raw, ok: false, compiler_version: null, target: null, reason: `the compile did not run on ${hostKey(h)} (distcc ${run.r.summary}): ${why}` },
            log: fullLog,
          };
        }
        const info = readObjectInfo(await readFile(join(dir, obj)).catch(() => Buffer.alloc(0)));
        const version = compilerIdent(info);
        const target = info?.target ?? null;
        const problems: string[] = [];
        if (!info) problems.push('the object that came back is not an ELF object');
        else {
          if (localInfo && (info.machine !== localInfo.machine || info.bits !== localInfo.bits || info.endian !== localInfo.endian)) {
            problems.push(`its compiler makes ${target} ${info.bits}-bit code, this builder's makes ${localInfo.target} ${localInfo.bits}-bit`);
          }
          if (!version) problems.push('its compiler left no identification (.comment) in the object');
          else if (local.compiler_version && version !== local.compiler_version) problems.push(`its compiler is "${version}", this builder's is "${local.compiler_version}"`);
        }
        if (!local.compiler_version && !problems.length) problems.push('the local compiler could not be identified to compare with');
        return {
          res: problems.length
            ? { host: h.raw, ok: false, compiler_version: version, target, reason: `ran on ${hostKey(h)}, but ${problems.join('; ')}` }
            : { host: h.raw, ok: true, compiler_version: version, target, reason: `ran there: "${proof}"` },
          log: fullLog,
        };
      }),
    );
    for (const { res, log } of results) {
      if (log) await write(log.endsWith('\n') ? log : `${log}\n`);
      await note(`${res.host}: ${res.ok ? 'pass' : 'FAIL'}: ${res.compiler_version ?? 'no compiler version'}; ${res.reason}`);
    }
    const list = results.map((r) => r.res);
    const failed = list.filter((r) => !r.ok);
    const ok = list.length > 0 && failed.length === 0;
    const summary =
      list.length === 0
        ? `no TCP distcc host to test${skipped.length ? ` (only ${skipped.map((s) => s.host).join(' ')})` : ' (distcc_hosts is empty)'}`
        : ok
          ? `all ${list.length} distcc host(s) compiled with ${local.compiler_version ?? 'the local compiler'}`
          : `${failed.length} of ${list.length} distcc host(s) failed: ${failed.map((f) => f.host).join(', ')}`;
    await note(summary);
    return { ok, summary, local, hosts: list, skipped };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
