// Builds the running service from a configuration: model registry, preprocessor, app, HTTP server; and stops it.
import { serve, type ServerType } from '@hono/node-server';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from './app.ts';
import type { Lifecycle } from './http/app-deps.ts';
import type { Config } from './config.ts';
import type { Db } from './db/client.ts';
import type { FqError } from './errors.ts';
import { createBodyParser } from './http/body-parser.ts';
import { createPreprocessor } from './imaging/preprocess.ts';
import { ModelRegistry } from './serving/model-registry.ts';
import { ModelPickup } from './serving/model-pickup.ts';
import { StartupPulls } from './hub/startup-pulls.ts';
import { findCachedWeight } from './hub/training-weights.ts';
import { openJobs, type JobsService } from './jobs/jobs-service.ts';
import { dataLayout } from './jobs/layout.ts';
import { configureLogger, logger } from './logger.ts';

export interface RunningServer {
  app: App;
  registry: ModelRegistry;
  /** Hot pickup of FQ_MODELS_DIR. */
  pickup: ModelPickup;
  /** FQ_PULL, pulled in the background. */
  pulls: StartupPulls;
  /**
   * The admin instance's jobs and database. Absent on a serving replica (FQ_ROLE=replica), and when the
   * data directory could not be opened (read-only, full): inference then serves without jobs.
   */
  jobs?: JobsService;
  db?: Db;
  port: number;
  /** Stops accepting, finishes in-flight work (for FQ_SHUTDOWN_GRACE_MS at most), frees everything. */
  close(): Promise<void>;
  /** After close(): requests still in flight when the shutdown grace ran out, whose connections were cut. */
  droppedAtShutdown(): number;
}

export async function startServer(config: Config): Promise<RunningServer> {
  configureLogger({ level: config.logLevel, format: config.logFormat });
  // Without FQ_DEFAULT_MODEL, the first model FQ_PULL names is the default: not ready until it is in.
  const defaultModel = config.defaultModel ?? StartupPulls.firstModel(config);
  const registry = new ModelRegistry({ ...config, defaultModel });
  const pickup = new ModelPickup(registry, { modelsDir: config.modelsDir, pollMs: config.modelsPollMs, watch: config.modelsWatch });
  await pickup.start();
  const pulls = new StartupPulls(config, () => pickup.scan(), (name) => registry.list().some((m) => m.name === name));
  // Only the admin instance owns the SQLite database and runs jobs; replicas serve the models folder.
  const admin = config.role === 'admin' ? await startJobs(config, registry) : undefined;
  const jobs = admin && 'jobs' in admin ? admin.jobs : undefined;
  const db = admin && 'db' in admin ? admin.db : undefined;
  // No crop size here: every request crops to its model's image_size.
  const preprocessor = createPreprocessor({
    maxInputPixels: config.maxInputPixels,
    maxDecodePixelsInFlight: config.maxDecodePixelsInFlight,
    threads: config.preprocessThreads,
  });
  const bodies = createBodyParser({ maxBodyBytes: config.maxBodyBytes });
  const lifecycle: Lifecycle = { shuttingDown: false, waitingFor: () => pulls.reasons() };
  const jobsUnavailable = admin && 'unavailable' in admin ? admin.unavailable : undefined;
  const app = createApp({ config, registry, preprocessor, bodies, lifecycle, jobs, jobsUnavailable });

  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  let inFlight = 0; // requests whose response has not closed, for the shutdown report
  server.on('request', (_request: IncomingMessage, response: ServerResponse) => {
    inFlight++;
    response.once('close', () => inFlight--);
  });
  jobs?.start();
  pulls.start();
  if (config.defaultModel && !config.pull.length && registry.list().every((m) => m.name !== config.defaultModel)) {
    logger.warn({ defaultModel: config.defaultModel, modelsDir: config.modelsDir }, 'FQ_DEFAULT_MODEL is not in the models folder (yet): not ready until it is');
  }
  logger.info({ port, role: config.role, models: registry.list().map((m) => `${m.name}@${m.version}`), default: registry.defaultModel }, 'fqtok listening');

  let closing: Promise<void> | undefined;
  let dropped = 0;
  const close = () =>
    (closing ??= (async () => {
      lifecycle.shuttingDown = true;
      await pulls.close(); // a partial download stays in the cache and continues at the next start
      // Stop accepting; in-flight requests finish (server.close waits for them), idle keep-alive sockets go.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      const grace = setTimeout(() => {
        dropped = inFlight;
        if (dropped > 0) logger.error({ dropped, shutdownGraceMs: config.shutdownGraceMs }, `shutdown grace ran out: ${dropped} request(s) dropped`);
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }, config.shutdownGraceMs);
      await closed;
      clearTimeout(grace);
      await jobs?.stop(); // trainers checkpoint and stop; their jobs resume at the next start
      await pickup.close();
      db?.$client.close();
      await registry.close();
      await preprocessor.close();
      await bodies.close();
      logger.info({ dropped }, 'fqtok stopped');
    })());
  return { app, registry, pickup, pulls, jobs, db, port, close, droppedAtShutdown: () => dropped };
}

/** The admin instance's jobs, or why they are unavailable (a data directory that is read-only or full). */
async function startJobs(config: Config, registry: ModelRegistry): Promise<{ jobs: JobsService; db: Db } | { unavailable: FqError }> {
  const layout = dataLayout(config.dataDir, config.weightsDir);
  return openJobs({
    database: layout.database,
    registry,
    python: config.python,
    datasetsDir: config.datasetsDir,
    jobsDir: layout.jobsDir,
    modelsDir: config.modelsDir, // fine-tuned versions are published into the models folder: <name>/<version>/
    weightsDir: layout.weightsDir,
    findWeight: (slot, variant) => findCachedWeight(slot, variant, config.hub),
    concurrency: config.jobConcurrency,
    cancelGraceMs: config.jobCancelGraceMs,
  });
}
