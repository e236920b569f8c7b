// One snapshot of the fleet shared by every browser: the coordination
// repository is read at most once per ttl however many pages poll, and
// requests that arrive while a read is under way wait for that same read.

export class SharedSnapshot<T> {
  private value: { at: number; ok: true; data: T } | { at: number; ok: false; error: unknown } | null = null;
  private pending: Promise<T> | null = null;
  private generation = 0;
  /** How many times the loader ran (for tests and logs). */
  loads = 0;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    const v = this.value;
    // A failure is remembered for the same ttl: a remote that is down is not asked again by every poll.
    if (v && this.clock() - v.at < this.ttlMs) return v.ok ? Promise.resolve(v.data) : Promise.reject(v.error);
    if (this.pending) return this.pending;
    const gen = this.generation;
    this.loads++;
    const p = this.load().then(
      (data) => {
        if (gen === this.generation) this.value = { at: this.clock(), ok: true, data };
        return data;
      },
      (error: unknown) => {
        if (gen === this.generation) this.value = { at: this.clock(), ok: false, error };
        throw error;
      },
    );
    this.pending = p;
    const clear = () => {
      if (this.pending === p) this.pending = null;
    };
    p.then(clear, clear);
    return p;
  }

  /** Forget the snapshot (after a write action): the next get() reads again, never an older read in flight. */
  invalidate(): void {
    this.generation++;
    this.value = null;
    this.pending = null;
  }
}
