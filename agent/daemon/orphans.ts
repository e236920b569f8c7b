// Builds run in process groups of their own (that is how a cancel stops a
// whole tree), so they outlive an agent that is SIGKILLed or crashes. The
// restarted agent must not leave them running, nor leave their jobs "running"
// on main for ever: its heartbeat is fresh again, so no other builder would
// ever reclaim them. So each group's leader is recorded per job attempt, with
// its start time from /proc (a recycled PID is never taken for it), and an
// agent that starts stops what its predecessor left and hands the jobs back.

import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface Group {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot; with the PID, unique until reboot. */
  start: string;
}

export interface Record_ {
  job: string;
  attempt: number;
  groups: Group[];
}

/**
 * The fields of /proc/<pid>/stat after the command name, from field 3 on:
 * [0] state, [2] process group, [19] start time. The command name (field 2)
 * may hold spaces and parentheses, so counting starts after the last ')'.
 */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function startField(stat: string): string | null {
  return statFields(stat)[19] ?? null;
}

/** The start time of a live process, or null if there is none with that PID. */
export async function processStart(pid: number): Promise<string | null> {
  try {
    return startField(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export class GroupRecords {
  constructor(private readonly dir: string) {}

  private file(job: string, attempt: number): string {
    return join(this.dir, `${job}-${attempt}.groups`);
  }

  /**
   * Synchronous on purpose: called the moment the group exists, so that an
   * agent killed a millisecond later has still recorded it. A few bytes.
   */
  add(job: string, attempt: number, pid: number): void {
    let start: string | null;
    try {
      start = startField(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return; // gone already: nothing to stop later
    }
    if (start === null) return;
    mkdirSync(this.dir, { recursive: true });
    appendFileSync(this.file(job, attempt), `${pid} ${start}\n`);
  }

  async remove(job: string, attempt: number): Promise<void> {
    await rm(this.file(job, attempt), { force: true });
  }

  async list(): Promise<Record_[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: Record_[] = [];
    for (const name of names) {
      const m = /^(job_[A-Za-z0-9_-]+)-(\d+)\.groups$/.exec(name);
      if (!m) continue;
      const text = await readFile(join(this.dir, name), 'utf8').catch(() => '');
      const groups = text
        .split('\n')
        .map((l) => l.trim().split(' '))
        .filter((f) => f.length === 2 && /^\d+$/.test(f[0]!))
        .map(([pid, start]) => ({ pid: Number(pid), start: start! }));
      out.push({ job: m[1]!, attempt: Number(m[2]), groups });
    }
    return out;
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* the group is gone */
  }
}

/**
 * Whether the recorded group still has a member: its leader (the same process,
 * by start time), or, once the leader is gone, a process it left behind in the
 * group. A live process with that PID but another start time means the number
 * was reused, and then the group is not ours: Linux never hands out a PID that
 * is still a process group's id, so while our group had members it could not be.
 */
async function groupAlive(g: Group): Promise<boolean> {
  const start = await processStart(g.pid);
  if (start !== null) return start === g.start;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return false;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(await readFile(`/proc/${e}/stat`, 'utf8').catch(() => ''));
    // A live member of the group, started no earlier than its leader.
    if (f[0] !== 'Z' && f[2] === String(g.pid) && Number(f[19]) >= Number(g.start)) return true;
  }
  return false;
}

/** Stops the recorded groups that still have members: SIGTERM, up to graceMs, then SIGKILL. How many were found alive. */
export async function stopGroups(groups: Group[], graceMs: number, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<number> {
  const alive: Group[] = [];
  for (const g of groups) if (await groupAlive(g)) alive.push(g);
  for (const g of alive) signalGroup(g.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  const left = async () => {
    const still: Group[] = [];
    for (const g of alive) if (await groupAlive(g)) still.push(g);
    return still;
  };
  let still = await left();
  while (still.length && Date.now() < deadline) {
    await sleep(50);
    still = await left();
  }
  // Whatever did not go on SIGTERM gets SIGKILL.
  for (const g of still) signalGroup(g.pid, 'SIGKILL');
  return alive.length;
}
