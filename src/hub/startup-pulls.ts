// FQ_PULL: what the server pulls at start-up when it is missing, in the background while it listens.
// /readyz answers 503 with what it waits for (a model being downloaded or converted, or why its pull
// failed); progress is logged. Training weights are pulled too but never hold readiness back: they
// matter to fine-tuning jobs only.
import type { Config } from '../config.ts';
import { logger } from '../logger.ts';
import { HubError } from './hub-file.ts';
import { parsePullTarget } from './model-catalogue.ts';
import { pull } from './pull.ts';
import { DownloadError } from './resumable-download.ts';

const ATTEMPTS = 3;
const BACKOFF_MS = [2_000, 10_000];
const LOG_EVERY_MS = 10_000;

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

export class StartupPulls {
  /** Model -> why the server waits for it. */
  private readonly waiting = new Map<string, string>();
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly config: Config,
    /** Called after a model was installed into FQ_MODELS_DIR: the pickup scans at once. */
    private readonly installed: () => Promise<void>,
    /** Whether a model is served (one pulled by hand after a failed pull is no reason to wait). */
    private readonly served: (name: string) => boolean,
  ) {
    for (const spec of config.pull) {
      const target = parsePullTarget(spec); // a bad entry stops the start here, with its message
      if (target.kind === 'model') this.waiting.set(target.name, `waiting to pull ${target.name}`);
    }
  }

  /** The first model FQ_PULL names: the default model when FQ_DEFAULT_MODEL is not set. */
  static firstModel(config: Config): string | undefined {
    for (const spec of config.pull) {
      const target = parsePullTarget(spec);
      if (target.kind === 'model') return target.name;
    }
    return undefined;
  }

  /** Why the server is not ready yet, one reason per model; empty when every model is in. */
  reasons(): string[] {
    return [...this.waiting].filter(([name]) => !this.served(name)).map(([, reason]) => reason);
  }

  start(): void {
    this.running ??= (async () => {
      for (const spec of this.config.pull) {
        if (this.stop.signal.aborted) return;
        await this.pullOne(spec);
      }
    })();
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
  }

  private async pullOne(spec: string): Promise<void> {
    const target = parsePullTarget(spec);
    const name = target.kind === 'model' ? target.name : spec;
    const say = (reason: string) => target.kind === 'model' && this.waiting.set(name, reason);
    let lastLog = 0;
    let lastTenth = -1;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await pull(spec, this.config, {
          onlyIfMissing: true,
          signal: this.stop.signal,
          onProgress: (what, bytes, total) => {
            const tenth = total ? Math.floor((10 * bytes) / total) : -1;
            const percent = total ? `${Math.floor((100 * bytes) / total)}%, ` : '';
            say(`pulling ${name}: ${percent}${gb(bytes)}${total ? ` of ${gb(total)}` : ''}`);
            if (tenth !== lastTenth || Date.now() - lastLog > LOG_EVERY_MS) {
              logger.info({ pull: spec, file: what, bytes, total }, `pulling ${what}: ${percent}${gb(bytes)}`);
              lastTenth = tenth;
              lastLog = Date.now();
            }
          },
          onStep: (message) => {
            say(message);
            logger.info({ pull: spec }, message);
          },
        });
        if (result.kind === 'model') {
          logger.info({ pull: spec, model: name, installed: result.installed, commit: result.commit, sha256: result.sha256 }, result.installed ? 'pulled and installed' : 'already in the models folder');
          await this.installed();
          this.waiting.delete(name);
        } else {
          logger.info({ pull: spec, weights: result.weights.map((w) => ({ name: w.name, path: w.path })) }, 'training weights ready');
        }
        return;
      } catch (err) {
        if (this.stop.signal.aborted) return;
        const retryable = (err instanceof DownloadError || err instanceof HubError) && err.retryable;
        const message = (err as Error).message;
        if (retryable && attempt < ATTEMPTS) {
          const waitMs = BACKOFF_MS[attempt - 1] ?? BACKOFF_MS.at(-1)!;
          logger.warn({ pull: spec, attempt, err: message }, `pull failed; trying again in ${waitMs / 1000} s`);
          say(`pulling ${name}: attempt ${attempt} failed (${message}); trying again`);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, waitMs);
            this.stop.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
          });
          continue;
        }
        logger.error({ pull: spec, err: message }, 'pull failed; fix the cause and restart (or run `fqtok pull`: a running server picks the model up)');
        say(`the pull of ${name} failed: ${message}`);
        return;
      }
    }
  }
}
