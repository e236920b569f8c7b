// What every command needs: where the coordination repository is, who is
// acting, and the store to talk to it. Built lazily so `--help` never touches
// the disk or the network.

import { userInfo } from 'node:os';
import { loadConfigFile, type FileConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { NAME_RE, parseName } from '../model/input.js';
import { defaultHome, embeddedRepo } from '../paths.js';
import { ensureBareRepo, initLayout } from '../store/layout.js';
import { readRef } from '../store/git.js';
import { Store, type TxLogger } from '../store/store.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  clock: () => Date;
  logger?: TxLogger;
}

export interface GlobalArgs {
  repo?: string;
  home?: string;
  builder?: string;
  config?: string;
  json?: boolean;
  debug?: boolean;
}

export class Context {
  /** Set by a command that reports problems without throwing (validate): the process's exit code. */
  exitCode = 0;
  private store_: Store | null = null;
  private config_: FileConfig | null = null;
  constructor(
    readonly args: GlobalArgs,
    readonly io: Io,
  ) {}

  get config(): FileConfig {
    return (this.config_ ??= loadConfigFile(this.args.config, this.io.env).config);
  }

  get home(): string {
    return this.args.home ?? (this.io.env.BUILDCOORD_HOME ? defaultHome(this.io.env) : this.config.home ?? defaultHome(this.io.env));
  }

  /** The explicitly configured remote, or null for the embedded default. */
  get configuredRepo(): string | null {
    return this.args.repo ?? this.io.env.BUILDCOORD_REPO ?? this.config.repo ?? null;
  }

  /** Builder name from --builder, BUILDCOORD_BUILDER or the config file; null if none. */
  get builder(): string | null {
    const b = this.args.builder ?? this.io.env.BUILDCOORD_BUILDER ?? this.config.builder ?? null;
    return b === null ? null : parseName(b, '--builder');
  }

  requireBuilder(): string {
    const b = this.builder;
    if (!b) throw new UsageError('--builder is required (or set BUILDCOORD_BUILDER, or "builder" in the config file)');
    return b;
  }

  /** Who is acting: the builder, else the local user, as a name the schema accepts. */
  get actor(): string {
    const b = this.builder;
    if (b) return b;
    let user = this.io.env.USER ?? '';
    if (!user) {
      try {
        user = userInfo().username;
      } catch {
        user = 'someone';
      }
    }
    const clean = user.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '').slice(0, 64);
    return NAME_RE.test(clean) ? clean : 'someone';
  }

  /** The store; with no repository configured anywhere, the embedded one (created on first use). */
  async store(): Promise<Store> {
    if (this.store_) return this.store_;
    let remote = this.configuredRepo;
    let embedded = false;
    if (!remote) {
      remote = embeddedRepo(this.home);
      await ensureBareRepo(remote);
      embedded = !(await readRef(remote, 'refs/heads/main'));
    }
    const store = new Store({ remote, home: this.home, actor: this.actor, clock: this.io.clock, logger: this.io.logger });
    // Like an embedded database: the default repository is made on first use.
    if (embedded) await initLayout(store, ['build1', 'build2'], this.io.clock);
    return (this.store_ = store);
  }

  close(): void {
    this.store_?.close();
  }

  json(value: unknown): void {
    this.io.out(JSON.stringify(value, null, 2) + '\n');
  }
}
