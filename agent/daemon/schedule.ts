// Periodic work that never overlaps itself. Whole-second intervals that fit a
// cron field run on node-cron (what operators read in logs and expect from a
// daemon); anything finer, as tests use, on a plain timer; work that many
// builders would otherwise do in the same instant (polling), spread out.

import cron from 'node-cron';

export interface Stoppable {
  stop(): void;
}

function cronExpression(ms: number): string | null {
  if (ms % 1000 !== 0) return null;
  const s = ms / 1000;
  if (s < 60 && 60 % s === 0) return `*/${s} * * * * *`;
  if (s % 60 === 0 && s / 60 < 60 && 60 % (s / 60) === 0) return `0 */${s / 60} * * * *`;
  return null;
}

export function every(ms: number, fn: () => Promise<void>, onError: (e: unknown) => void, opts: { spread?: boolean } = {}): Stoppable {
  let busy = false;
  const run = () => {
    if (busy) return; // the previous run is still going: skip, never pile up
    busy = true;
    fn()
      .catch(onError)
      .finally(() => (busy = false));
  };
  if (opts.spread) {
    // Builders polling on the same wall-clock second all race for the same job and
    // all but one lose a push: each waits its own, slightly varying interval.
    let stopped = false;
    let t: NodeJS.Timeout;
    const next = () => {
      t = setTimeout(() => {
        run();
        if (!stopped) next();
      }, ms * (0.8 + 0.4 * Math.random()));
    };
    next();
    return {
      stop: () => {
        stopped = true;
        clearTimeout(t);
      },
    };
  }
  const expr = cronExpression(ms);
  if (expr) {
    const task = cron.schedule(expr, run, { noOverlap: false });
    return { stop: () => void task.stop() };
  }
  const t = setInterval(run, ms);
  return { stop: () => clearInterval(t) };
}
