// `maven` jobs: mvn -B, offline against Debian's repository, with goals and
// profiles a job may ask for only within what this builder's config allows.
//
// Jobs have no goals field (the jobs schema is shared and stays as it is):
// goals come from the builder's config (maven.goals, default package), and a
// job may ask for others in its labels "maven.goals" / "maven.profiles"
// (comma separated), each checked against maven.allowed_goals /
// maven.allowed_profiles before anything runs.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileConfig } from '../config.js';
import type { Job } from '../model/types.js';
import { filesIn } from './artifacts.js';
import { failed, RefusedError, type StepContext, type StepOutcome } from './step.js';

export const DEFAULT_GOALS = ['package'];
export const DEFAULT_ALLOWED_GOALS = ['clean', 'compile', 'test', 'package', 'verify', 'install'];
export const DEFAULT_SETTINGS = '/etc/maven/settings-debian.xml';

const GOAL_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
const PROFILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const show = (s: string) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

/** Goals and profiles for this job on this builder; RefusedError names the first thing not allowed. */
export function mavenPlan(job: Job, config: FileConfig): { goals: string[]; profiles: string[] } {
  const m = config.maven ?? {};
  const labels = job.labels ?? {};
  let goals = m.goals?.length ? [...m.goals] : [...DEFAULT_GOALS];
  for (const g of goals) if (!GOAL_RE.test(g)) throw new RefusedError(`maven goal ${show(g)} in the builder's config is not a goal name`);
  if (labels['maven.goals'] !== undefined) {
    const allowed = m.allowed_goals ?? DEFAULT_ALLOWED_GOALS;
    goals = list(labels['maven.goals']);
    if (!goals.length) throw new RefusedError('label maven.goals names no goal');
    for (const g of goals) {
      if (!GOAL_RE.test(g)) throw new RefusedError(`maven goal ${show(g)} (label maven.goals) is not a goal name: refused before anything ran`);
      if (!allowed.includes(g)) throw new RefusedError(`maven goal ${show(g)} (label maven.goals) is not allowed on this builder (allowed: ${allowed.join(', ') || 'none'})`);
    }
  }
  const profiles = labels['maven.profiles'] !== undefined ? list(labels['maven.profiles']) : [];
  const allowedProfiles = m.allowed_profiles ?? [];
  for (const p of profiles) {
    if (!PROFILE_RE.test(p)) throw new RefusedError(`maven profile ${show(p)} (label maven.profiles) is not a profile name: refused before anything ran`);
    if (!allowedProfiles.includes(p)) throw new RefusedError(`maven profile ${show(p)} (label maven.profiles) is not allowed on this builder (allowed: ${allowedProfiles.join(', ') || 'none'})`);
  }
  return { goals, profiles };
}

export function mavenArgs(plan: { goals: string[]; profiles: string[] }, config: FileConfig): string[] {
  const m = config.maven ?? {};
  return [
    '-B',
    ...(m.offline === false ? [] : ['-o']),
    '-s',
    m.settings ?? DEFAULT_SETTINGS,
    // Tests in Maven's own JVM: a forked surefire JVM lingers ~10 s after the tests.
    '-DforkCount=0',
    ...plan.goals,
    ...(plan.profiles.length ? ['-P', plan.profiles.join(',')] : []),
  ];
}

/** target/*.jar, and <module>/target/*.jar one level down for a multi-module build. */
async function jars(dir: string): Promise<string[]> {
  const isJar = (n: string) => n.endsWith('.jar');
  const found = await filesIn(join(dir, 'target'), isJar);
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory() && e.name !== 'target' && !e.name.startsWith('.')) found.push(...(await filesIn(join(dir, e.name, 'target'), isJar)));
  }
  return found;
}

export async function runMaven(ctx: StepContext, plan: { goals: string[]; profiles: string[] }): Promise<StepOutcome> {
  const args = mavenArgs(plan, ctx.config);
  const r = await ctx.run('maven', 'mvn', args);
  if (r.aborted || r.exitCode !== 0 || r.timedOut) return failed(`mvn ${r.summary}`, r);
  const files = await jars(ctx.dir);
  if (!files.length) return failed(`mvn ${r.summary} but left no target/*.jar (goals: ${plan.goals.join(' ')})`, r);
  const offline = ctx.config.maven?.offline === false ? '' : ' offline';
  return {
    ok: true,
    summary: `mvn ${plan.goals.join(' ')}${plan.profiles.length ? ` -P ${plan.profiles.join(',')}` : ''}${offline} ${r.summary}`,
    exitCode: 0,
    files,
    mode: `maven${offline ? '-offline' : ''}`,
  };
}
