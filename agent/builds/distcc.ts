// distcc and pump for `make` jobs: which hosts answer, whether pump mode
// really works, and afterwards what actually happened.
//
// distcc never fails a build because of itself: a dead host, a broken include
// server or a refused connection all end in "running locally instead" and
// exit 0. So the mode a build ran in is read from distcc's own verbose client
// log (DISTCC_VERBOSE=1, DISTCC_LOG=<file>), never assumed from the settings.

import { connect } from 'node:net';

export type DistccMode = 'pump' | 'distcc' | 'local';

export interface HostSpec {
  /** The token as written in DISTCC_HOSTS. */
  raw: string;
  kind: 'tcp' | 'ssh' | 'localhost' | 'option' | 'zeroconf';
  host?: string;
  port?: number;
  /** Concurrent jobs the host takes (distcc's default is 4 for a remote host, 2 for localhost). */
  limit?: number;
  /** ,cpp: the host can take pump-mode (preprocessed-remotely) jobs. */
  cpp: boolean;
}

export const DEFAULT_DISTCC_PORT = 3632;

/**
 * DISTCC_HOSTS syntax (distcc(1)): localhost[/N], [user]@host[/N][:cmd][,opts],
 * host[:port][/N][,opts] (also the old host[/N][:port]), --randomize,
 * --localslots=N, --localslots_cpp=N, +zeroconf. Throws on a token it cannot
 * read, naming it: a typo in the builder's config should be said, not guessed.
 */
export function parseDistccHosts(spec: string): HostSpec[] {
  const out: HostSpec[] = [];
  for (const raw of spec.split(/\s+/).filter(Boolean)) {
    if (raw.startsWith('--')) {
      if (!/^--(randomize|localslots=\d+|localslots_cpp=\d+)$/.test(raw)) throw new Error(`distcc host ${JSON.stringify(raw)}: unknown option`);
      out.push({ raw, kind: 'option', cpp: false });
      continue;
    }
    if (raw === '+zeroconf') {
      out.push({ raw, kind: 'zeroconf', cpp: false });
      continue;
    }
    const [main, ...opts] = raw.split(',');
    for (const o of opts) if (!/^(lzo|cpp|auth(=[A-Za-z0-9._@/-]+)?)$/.test(o)) throw new Error(`distcc host ${JSON.stringify(raw)}: unknown option ,${o}`);
    const cpp = opts.includes('cpp');
    // distcc itself refuses the host list then ("pump mode requires compression"), and every compile with it.
    if (cpp && !opts.includes('lzo')) throw new Error(`distcc host ${JSON.stringify(raw)}: pump mode (,cpp) needs compression too: write ,lzo,cpp`);
    const lm = /^localhost(?:\/(\d+))?$/.exec(main!);
    if (lm) {
      out.push({ raw, kind: 'localhost', host: 'localhost', limit: lm[1] ? Number(lm[1]) : 2, cpp });
      continue;
    }
    const sm = /^([A-Za-z0-9._-]*)@([A-Za-z0-9._-]+)(?:\/(\d+))?(?::(\S+))?$/.exec(main!);
    if (sm) {
      out.push({ raw, kind: 'ssh', host: sm[2], limit: sm[3] ? Number(sm[3]) : 4, cpp });
      continue;
    }
    const tm = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?(?:\/(\d+))?(?::(\d+))?$/.exec(main!);
    if (!tm || (tm[2] && tm[4])) throw new Error(`distcc host ${JSON.stringify(raw)}: expected HOST[:PORT][/LIMIT][,lzo][,cpp]`);
    const port = Number(tm[2] ?? tm[4] ?? DEFAULT_DISTCC_PORT);
    if (port < 1 || port > 65535) throw new Error(`distcc host ${JSON.stringify(raw)}: port ${port} is out of range`);
    out.push({ raw, kind: 'tcp', host: tm[1]!.replace(/^\[|\]$/g, ''), port, limit: tm[3] ? Number(tm[3]) : 4, cpp });
  }
  return out;
}

/** Whether something accepts a TCP connection at host:port within timeoutMs; why not if it does not. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; why?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (r: { ok: boolean; why?: string }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, why: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, why: e.code ?? e.message }));
  });
}

export interface HostCheck {
  /** Hosts kept, as a DISTCC_HOSTS value (options and localhost kept as written). */
  live: HostSpec[];
  dead: Array<{ raw: string; why: string }>;
  /** Remote hosts we could not check (ssh, zeroconf): kept, and said so. */
  unchecked: string[];
}

/** TCP hosts are probed in parallel; dead ones are dropped so distcc does not wait on them for every file. */
export async function checkHosts(hosts: HostSpec[], timeoutMs = 1500): Promise<HostCheck> {
  const results = await Promise.all(
    hosts.map(async (h) => (h.kind === 'tcp' ? { h, r: await probeTcp(h.host!, h.port!, timeoutMs) } : { h, r: { ok: true } as { ok: boolean; why?: string } })),
  );
  return {
    live: results.filter((x) => x.r.ok).map((x) => x.h),
    dead: results.filter((x) => !x.r.ok).map((x) => ({ raw: x.h.raw, why: x.r.why ?? 'no answer' })),
    unchecked: hosts.filter((h) => h.kind === 'ssh' || h.kind === 'zeroconf').map((h) => h.raw),
  };
}

export const isRemote = (h: HostSpec) => h.kind === 'tcp' || h.kind === 'ssh' || h.kind === 'zeroconf';

export function hostsValue(hosts: HostSpec[], opts: { stripCpp?: boolean } = {}): string {
  return hosts.map((h) => (opts.stripCpp ? h.raw.split(',').filter((p) => p !== 'cpp').join(',') : h.raw)).join(' ');
}

export interface ClientLogStats {
  /** "compile F on HOST completed ok" with HOST not localhost. */
  remote: number;
  /** The same on localhost: distcc ran the compiler here (by choice or as a fallback). */
  local: number;
  /** Remote compiles per host. */
  byHost: Record<string, number>;
  /** "failed to distribute ..., running locally instead". */
  distributeFailures: number;
  /** Pump mode: files whose includes the include server did not deliver (preprocessed locally instead). */
  pumpFallbacks: number;
  /** Files distcc preprocessed locally ("cpp F on localhost completed ok"). */
  localCpp: number;
}

/** Reads distcc's verbose client log (one file for every distcc process of the build). */
export function analyzeClientLog(text: string): ClientLogStats {
  const s: ClientLogStats = { remote: 0, local: 0, byHost: {}, distributeFailures: 0, pumpFallbacks: 0, localCpp: 0 };
  for (const line of text.split('\n')) {
    const c = /\bcompile (\S+) on (\S+) completed ok\b/.exec(line);
    if (c) {
      // "(null)": no source file, i.e. a link or another job distcc never distributes.
      if (c[1] === '(null)') continue;
      const host = c[2]!;
      if (host === 'localhost') s.local++;
      else {
        s.remote++;
        const key = host.split(',')[0]!;
        s.byHost[key] = (s.byHost[key] ?? 0) + 1;
      }
      continue;
    }
    if (/\bcpp \S+ on localhost completed ok\b/.test(line)) s.localCpp++;
    else if (/failed to get includes from include server/.test(line)) s.pumpFallbacks++;
    else if (/Warning: failed to distribute \S+ to /.test(line)) s.distributeFailures++;
  }
  return s;
}

/**
 * What the include server said when it failed, from the build's output
 * (distcc-pump lets it print there): the Python exception line if there is
 * one, e.g. "SystemError: PY_SSIZE_T_CLEAN macro must be defined for '#' formats".
 */
export function includeServerError(output: string): string | null {
  const exc = /^([A-Za-z]+(?:Error|Exception)): (.+)$/m.exec(output);
  if (exc) return `${exc[1]}: ${exc[2]!.trim()}`.slice(0, 200);
  const internal = /Include server internal error: (.+)/.exec(output);
  if (internal) return internal[1]!.trim().slice(0, 200);
  const other = /(include server[^\n]*(?:not|fail|crash|died|error)[^\n]*)/i.exec(output);
  return other ? other[1]!.trim().slice(0, 200) : null;
}

export interface DistccReport {
  mode: DistccMode;
  /** Why this mode, for a person: one or two sentences. */
  reason: string;
  /** The hosts as configured. */
  hosts: string;
  /** The hosts the build was given (dead ones dropped). */
  used_hosts: string | null;
  dead_hosts: Array<{ host: string; why: string }>;
  pump_requested: boolean;
  remote_compiles: number;
  local_compiles: number | null;
  remote_by_host?: Record<string, number>;
  pump_fallbacks?: number;
  distribute_failures?: number;
  include_server_error?: string | null;
}

/** The mode a build actually ran in, from what distcc logged, and why. */
export function judge(
  plan: { pump: boolean; pumpRequested: boolean; planReason: string | null },
  stats: ClientLogStats,
  includeError: string | null,
): { mode: DistccMode; reason: string } {
  const total = stats.remote + stats.local;
  const notes: string[] = [];
  if (plan.planReason) notes.push(plan.planReason);
  if (stats.remote === 0) {
    const why =
      total === 0
        ? 'no compile went through distcc (does the Makefile use $(CC)/$(CXX)?)'
        : `all ${total} compiles ran locally${stats.distributeFailures ? ` (${stats.distributeFailures} failed to distribute)` : ''}`;
    return { mode: 'local', reason: [...notes, why].join('; ') };
  }
  const remote = `${stats.remote} of ${total} compiles ran remotely (${Object.entries(stats.byHost).map(([h, n]) => `${h}: ${n}`).join(', ')})`;
  if (plan.pump) {
    if (stats.pumpFallbacks === 0) return { mode: 'pump', reason: [...notes, `pump mode: the include server served every file; ${remote}`].join('; ') };
    const err = includeError ? ` (${includeError})` : '';
    if (stats.pumpFallbacks >= stats.remote) {
      return {
        mode: 'distcc',
        reason: [...notes, `pump was requested but the include server failed${err}: distcc preprocessed all ${stats.pumpFallbacks} files locally, so this was plain distcc, not pump; ${remote}`].join('; '),
      };
    }
    return {
      mode: 'pump',
      reason: [...notes, `pump mode, but the include server failed for ${stats.pumpFallbacks} of ${stats.remote} files${err}, which were preprocessed locally; ${remote}`].join('; '),
    };
  }
  if (stats.distributeFailures) notes.push(`${stats.distributeFailures} compiles failed to distribute and ran locally`);
  return { mode: 'distcc', reason: [...notes, remote].join('; ') };
}
