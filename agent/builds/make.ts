// `make` jobs: make -jN, with CC/CXX through distcc when this builder has
// distcc hosts that answer, through distcc-pump when the hosts ask for it
// (,cpp) and the include server really serves. The mode reported is the one
// distcc's own log shows, not the one that was asked for.

import { availableParallelism } from 'node:os';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  analyzeClientLog,
  checkHosts,
  hostsValue,
  includeServerError,
  isRemote,
  judge,
  parseDistccHosts,
  type DistccReport,
  type HostSpec,
} from './distcc.js';
import { failed, which, type StepContext, type StepOutcome } from './step.js';
import { madeFiles, MAX_MADE_FILES } from './artifacts.js';
import { spawnGit, type GitRunner } from '../store/git.js';

/** How long a distcc host gets to accept a TCP connection before it is left out of this build. */
export const PROBE_TIMEOUT_MS = 1500;

const PROBE_C = '#include <stdio.h>\nint main(void) { puts("buildcoord pump probe"); return 0; }\n';

async function readFrom(file: string, offset: number): Promise<string> {
  const fh = await open(file, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const { size } = await fh.stat();
    const len = Math.max(0, size - offset);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, offset);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

const sizeOf = async (f: string) => (await stat(f).catch(() => null))?.size ?? 0;

/**
 * One tiny compile through distcc-pump before the real build: the stock
 * Debian 12 include server crashes on its first request under Python 3.11
 * and distcc then quietly preprocesses everything locally. Knowing that
 * before the build lets it run as plain distcc and say so.
 */
async function pumpServes(ctx: StepContext, pump: string, hosts: HostSpec[]): Promise<{ ok: boolean; why: string }> {
  const dir = join(ctx.base, 'pump-probe');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'probe.c'), PROBE_C);
  const clientLog = join(dir, 'distcc-client.log');
  const probeLog = join(dir, 'probe.log');
  const r = await ctx.run('pump-probe', pump, ['distcc', 'gcc', '-c', 'probe.c', '-o', 'probe.o'], {
    cwd: dir,
    logFile: probeLog,
    timeoutMs: 60_000,
    env: { DISTCC_HOSTS: hostsValue(hosts), DISTCC_VERBOSE: '1', DISTCC_LOG: clientLog },
  });
  const stats = analyzeClientLog(await readFile(clientLog, 'utf8').catch(() => ''));
  const err = includeServerError(await readFile(probeLog, 'utf8').catch(() => ''));
  if (r.exitCode !== 0) return { ok: false, why: `the pump probe compile ${r.summary}${err ? ` (${err})` : ''}` };
  if (stats.pumpFallbacks > 0) return { ok: false, why: `the include server did not serve the probe compile${err ? ` (${err})` : ''}: distcc fell back to preprocessing locally` };
  if (stats.remote === 0) return { ok: false, why: 'the pump probe compile did not run remotely' };
  return { ok: true, why: 'the include server served a probe compile' };
}

interface Plan {
  command: string;
  args: string[];
  env: Record<string, string | undefined>;
  pump: boolean;
  pumpRequested: boolean;
  planReason: string | null;
  report: Omit<DistccReport, 'mode' | 'reason' | 'remote_compiles' | 'local_compiles'>;
  useDistcc: boolean;
}

async function plan(ctx: StepContext, clientLog: string): Promise<Plan | StepOutcome> {
  const cpus = Math.max(1, availableParallelism());
  const spec = (ctx.config.distcc_hosts ?? '').trim();
  const local = (reason: string, rest: Partial<Plan['report']> = {}): Plan => ({
    command: 'make',
    args: [`-j${cpus}`],
    env: {},
    pump: false,
    pumpRequested: rest.pump_requested ?? false,
    planReason: reason,
    useDistcc: false,
    report: { hosts: spec, used_hosts: null, dead_hosts: [], pump_requested: false, ...rest },
  });
  if (!spec) return local('no distcc hosts configured for this builder');
  let hosts: HostSpec[];
  try {
    hosts = parseDistccHosts(spec);
  } catch (e) {
    return failed(`distcc_hosts ${JSON.stringify(spec)} cannot be read: ${(e as Error).message}`);
  }
  const pumpRequested = hosts.some((h) => h.cpp && isRemote(h));
  if (!which('distcc', ctx.env)) return local('distcc is not installed on this builder: built locally', { pump_requested: pumpRequested });
  const checked = await checkHosts(hosts, PROBE_TIMEOUT_MS);
  const dead = checked.dead.map((d) => ({ host: d.raw, why: d.why }));
  const remote = checked.live.filter(isRemote);
  const deadText = dead.map((d) => `${d.host} (${d.why})`).join(', ');
  if (dead.length) await ctx.note(`distcc: no answer from ${deadText}: left out of this build`);
  if (!remote.length) return local(`no distcc host answered (${deadText || 'none configured remotely'}): built locally`, { dead_hosts: dead, pump_requested: pumpRequested });
  await ctx.note(`distcc: ${remote.map((h) => h.raw).join(' ')} answered${checked.unchecked.length ? ` (${checked.unchecked.join(' ')} not checked)` : ''}`);
  const slots = remote.reduce((n, h) => n + (h.limit ?? 4), 0) + checked.live.filter((h) => h.kind === 'localhost').reduce((n, h) => n + (h.limit ?? 2), 0);
  const jobs = Math.max(cpus, slots);
  const makeArgs = [`-j${jobs}`, 'CC=distcc gcc', 'CXX=distcc g++'];
  const env = { DISTCC_VERBOSE: '1', DISTCC_LOG: clientLog };
  const report = { hosts: spec, dead_hosts: dead, pump_requested: pumpRequested };
  let planReason: string | null = null;
  if (pumpRequested) {
    const pump = ctx.config.distcc_pump ?? ctx.pump ?? which('distcc-pump', ctx.env) ?? which('pump', ctx.env);
    if (!pump) {
      planReason = 'pump was requested (,cpp) but distcc-pump is not installed: plain distcc';
    } else {
      const probe = await pumpServes(ctx, pump, checked.live);
      await ctx.note(`distcc: pump probe: ${probe.why}`);
      if (probe.ok) {
        const used = hostsValue(checked.live);
        return { command: pump, args: ['make', ...makeArgs], env: { ...env, DISTCC_HOSTS: used }, pump: true, pumpRequested, planReason: null, useDistcc: true, report: { ...report, used_hosts: used } };
      }
      planReason = `pump was requested (,cpp) but ${probe.why}; built with plain distcc instead`;
    }
  }
  const used = hostsValue(checked.live, { stripCpp: true });
  return { command: 'make', args: makeArgs, env: { ...env, DISTCC_HOSTS: used }, pump: false, pumpRequested, planReason, useDistcc: true, report: { ...report, used_hosts: used } };
}

export async function runMake(ctx: StepContext, git: GitRunner = spawnGit): Promise<StepOutcome> {
  const clientLog = join(ctx.base, 'distcc-client.log');
  await rm(clientLog, { force: true });
  const p = await plan(ctx, clientLog);
  if (!('command' in p)) return p;
  const from = await sizeOf(ctx.logFile);
  if (p.env.DISTCC_HOSTS) await ctx.note(`distcc: DISTCC_HOSTS=${p.env.DISTCC_HOSTS}${p.pump ? ' (pump mode)' : ''}`);
  const r = await ctx.run('make', p.command, p.args, { env: p.env });
  let distcc: DistccReport;
  if (p.useDistcc) {
    const stats = analyzeClientLog(await readFile(clientLog, 'utf8').catch(() => ''));
    const err = stats.pumpFallbacks ? includeServerError(await readFrom(ctx.logFile, from)) : null;
    const j = judge(p, stats, err);
    distcc = {
      mode: j.mode,
      reason: j.reason,
      ...p.report,
      remote_compiles: stats.remote,
      local_compiles: stats.local,
      remote_by_host: stats.byHost,
      ...(p.pump || stats.pumpFallbacks ? { pump_fallbacks: stats.pumpFallbacks, include_server_error: err } : {}),
      ...(stats.distributeFailures ? { distribute_failures: stats.distributeFailures } : {}),
    } as DistccReport;
  } else {
    distcc = { mode: 'local', reason: p.planReason ?? 'built locally', ...p.report, pump_requested: p.pumpRequested, remote_compiles: 0, local_compiles: null } as DistccReport;
  }
  await ctx.note(`distcc: mode ${distcc.mode}: ${distcc.reason}`);
  const details = { distcc };
  let how = distcc.mode === 'local' ? 'local' : `${distcc.mode}, ${distcc.remote_compiles} remote compiles`;
  if (distcc.pump_requested && distcc.mode !== 'pump') how += /include server/.test(distcc.reason) ? '; pump requested, include server failed' : '; pump requested, not used';
  if (r.aborted || r.exitCode !== 0 || r.timedOut) return { ...failed(`make ${r.summary} (${how})`, r), mode: distcc.mode, details };
  let made;
  try {
    made = await madeFiles(ctx.dir, git);
  } catch (e) {
    return { ...failed(`make ${r.summary} (${how}) but what it made could not be listed: ${(e as Error).message}`, r), mode: distcc.mode, details };
  }
  if (made.left) await ctx.note(`artifacts: ${made.left} more files the build made were left out (at most ${MAX_MADE_FILES})`);
  return { ok: true, summary: `make ${r.summary} (${how})`, exitCode: 0, files: made.files, mode: distcc.mode, details };
}
