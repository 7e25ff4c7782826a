// Hot pickup: serves the model versions that appear in the models folder while the service runs,
// reloads one whose files were replaced, and unloads one that disappears (after its in-flight requests).
// The folder is the truth, read whole at every scan; file-system events only make a scan come sooner.
// fs.watch is not enough alone: on network volumes (NFS, EFS: what ReadWriteMany volumes are) changes
// made by another machine raise no event, so a poll every `pollMs` catches what events miss.
import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../logger.ts';
import { checkModelFolder, folderFingerprint } from './model-check.ts';
import { findModelFolders, type ModelFolder } from './model-folders.ts';
import type { ModelRegistry } from './model-registry.ts';

export interface PickupOptions {
  /** The folder to serve (FQ_MODELS_DIR). */
  modelsDir: string;
  /** Rescan this often (FQ_MODELS_POLL_MS); 0: events only. */
  pollMs: number;
  /** Rescan on file-system events (FQ_MODELS_WATCH). */
  watch: boolean;
  /** A manifest without checksums (written before they existed) is loaded once its folder stopped changing this long. */
  settleMs?: number;
  /** Events come in bursts (a copy writes many times): one scan this long after the first. */
  debounceMs?: number;
}

interface Seen {
  dir: string;
  fingerprint: string;
}

const keyOf = (f: { name: string; version: number }) => `${f.name}@${f.version}`;

export class ModelPickup {
  /** The versions this pickup loaded, by name@version: only these does it unload or reload. */
  private readonly loaded = new Map<string, Seen & ModelFolder>();
  /** The last failed attempt per version: retried once its folder changes. */
  private readonly failed = new Map<string, Seen>();
  /** Folders without checksums waiting to stop changing: since when each looked like this. */
  private readonly settling = new Map<string, Seen & { since: number }>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly unloading = new Set<Promise<void>>();
  /** Loaded versions found missing once: unloaded when the next scan misses them too (a swap by two renames is not a removal). */
  private readonly missing = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private soonAt = Infinity;
  private closed = false;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly options: PickupOptions,
  ) {}

  /** Loads what the folder holds now, then follows it. */
  async start(): Promise<void> {
    await this.scan(true);
    if (this.options.pollMs > 0) {
      this.pollTimer = setInterval(() => void this.scan(), this.options.pollMs);
      this.pollTimer.unref();
    }
  }

  /** Scans now (after a scan under way); resolves when the folder's state is served. */
  scan(initial = false): Promise<void> {
    if (this.queued) return this.queued;
    const next = this.chain.then(async () => {
      this.queued = undefined;
      if (this.closed) return;
      try {
        await this.scanOnce(initial);
      } catch (err) {
        logger.error({ err, modelsDir: this.options.modelsDir }, 'models folder scan failed');
      }
    });
    this.queued = next;
    this.chain = next;
    return next;
  }

  /** Versions being unloaded, waiting for their in-flight requests. */
  get unloadsInProgress(): number {
    return this.unloading.size;
  }

  /** Resolves when every unload begun so far has finished. */
  async unloadsDone(): Promise<void> {
    await Promise.all([...this.unloading]);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.soonTimer);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    await this.chain;
    await this.unloadsDone();
  }

  private async scanOnce(initial: boolean): Promise<void> {
    const { modelsDir } = this.options;
    const found = await findModelFolders(modelsDir);
    if (!found && initial) logger.warn({ modelsDir }, 'models folder not found; serving what appears there later');
    const folders = found ?? [];
    if (this.options.watch) await this.followFolders();
    const present = new Map(folders.map((f) => [keyOf(f), f]));
    for (const [key, seen] of this.loaded) {
      if (present.get(key)?.dir === seen.dir) {
        this.missing.delete(key);
      } else if (this.missing.has(key)) {
        this.missing.delete(key);
        this.unload(key, seen);
      } else {
        this.missing.add(key);
        this.scanSoon(this.options.debounceMs ?? 100);
      }
    }
    for (const [key, folder] of present) {
      if (!this.missing.has(key)) await this.consider(key, folder, initial);
    }
    for (const key of [...this.failed.keys(), ...this.settling.keys()]) {
      if (!present.has(key)) this.failed.delete(key), this.settling.delete(key);
    }
  }

  private async consider(key: string, folder: ModelFolder, initial: boolean): Promise<void> {
    const { name, version, dir } = folder;
    const fingerprint = await folderFingerprint(dir);
    const mine = this.loaded.get(key);
    if (mine?.fingerprint === fingerprint) return;
    const servedFrom = this.registry.servedFrom(name, version);
    if (!mine && servedFrom !== undefined) {
      // Loaded by someone else (a fine-tuning job publishing here): theirs to manage.
      if (servedFrom !== dir && this.failed.get(key)?.fingerprint !== fingerprint) {
        logger.warn({ model: name, version, dir, servedFrom }, 'this model version is already served from another folder; not loading this one');
        this.failed.set(key, { dir, fingerprint });
      }
      return;
    }
    const failed = this.failed.get(key);
    if (failed?.dir === dir && failed.fingerprint === fingerprint) return;
    let checked;
    try {
      checked = await checkModelFolder(dir);
    } catch (err) {
      this.failed.set(key, { dir, fingerprint });
      const log = initial ? logger.error.bind(logger) : logger.warn.bind(logger);
      log({ model: name, version, dir, reason: (err as Error).message }, 'model folder not loaded (incomplete or invalid); tried again when it changes');
      return;
    }
    if (!checked.verified && !initial && !this.settled(key, dir, fingerprint)) return;
    try {
      await this.registry.load(name, version, dir, checked.manifest);
      this.loaded.set(key, { name, version, dir, fingerprint });
      this.failed.delete(key);
      this.settling.delete(key);
      if (!initial) logger.info({ model: name, version, dir, replaced: Boolean(mine) }, 'model picked up from the models folder');
    } catch (err) {
      this.failed.set(key, { dir, fingerprint });
      logger.error({ err, model: name, version, dir }, 'model folder could not be loaded; tried again when it changes');
    }
  }

  /** Whether a folder without checksums has looked the same for settleMs; schedules the scan that will find it so. */
  private settled(key: string, dir: string, fingerprint: string): boolean {
    const settleMs = this.options.settleMs ?? 2_000;
    const now = Date.now();
    const seen = this.settling.get(key);
    if (seen?.dir === dir && seen.fingerprint === fingerprint && now - seen.since >= settleMs) return true;
    const since = seen?.dir === dir && seen.fingerprint === fingerprint ? seen.since : now;
    this.settling.set(key, { dir, fingerprint, since });
    this.scanSoon(since + settleMs - now);
    return false;
  }

  private unload(key: string, seen: Seen & ModelFolder): void {
    this.loaded.delete(key);
    const done = this.registry
      .unload(seen.name, seen.version, seen.dir)
      .catch((err: unknown) => logger.error({ err, model: seen.name, version: seen.version }, 'model unload failed'))
      .finally(() => this.unloading.delete(done));
    this.unloading.add(done);
  }

  /** One scan `delayMs` from now, unless one is due sooner. */
  private scanSoon(delayMs: number): void {
    const at = Date.now() + Math.max(0, delayMs);
    if (this.closed || at >= this.soonAt) return;
    clearTimeout(this.soonTimer);
    this.soonAt = at;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.soonAt = Infinity;
      void this.scan();
    }, at - Date.now());
    this.soonTimer.unref();
  }

  /**
   * Watches the models folder, each model's folder and each version folder (not recursively: a
   * publisher's rename into place is an event in the parent; a copy in place is one in the folder).
   */
  private async followFolders(): Promise<void> {
    const wanted = [this.options.modelsDir];
    for (const name of await visibleSubfolders(this.options.modelsDir)) {
      const dir = path.join(this.options.modelsDir, name);
      wanted.push(dir, ...(await visibleSubfolders(dir)).map((v) => path.join(dir, v)));
    }
    for (const [dir, watcher] of this.watchers) {
      if (!wanted.includes(dir)) watcher.close(), this.watchers.delete(dir);
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir) || this.closed) continue;
      try {
        const watcher = watch(dir, { persistent: false }, () => this.scanSoon(this.options.debounceMs ?? 100));
        watcher.on('error', () => {
          watcher.close(); // e.g. the folder went away; the next scan watches what is there
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, watcher);
      } catch (err) {
        // Not there (yet), or out of inotify watches: the poll still sees it.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, dir }, 'cannot watch this folder; relying on the poll');
      }
    }
  }
}

async function visibleSubfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
}
