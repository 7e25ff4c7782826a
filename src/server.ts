// Builds the running service from a configuration: model registry, preprocessor, app, HTTP server; and stops it.
import { serve, type ServerType } from '@hono/node-server';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from './app.ts';
import type { Lifecycle } from './http/app-deps.ts';
import type { Config } from './config.ts';
import type { Db } from './db/client.ts';
import { createBodyParser } from './http/body-parser.ts';
import { createPreprocessor } from './imaging/preprocess.ts';
import { ModelRegistry } from './serving/model-registry.ts';
import { ModelPickup } from './serving/model-pickup.ts';
import { openJobs, type JobsService } from './jobs/jobs-service.ts';
import { dataLayout } from './jobs/layout.ts';
import { configureLogger, logger } from './logger.ts';

export interface RunningServer {
  app: App;
  registry: ModelRegistry;
  /** Hot pickup of FQ_MODELS_DIR. */
  pickup: ModelPickup;
  /** Absent when the data directory could not be opened (read-only, full): inference serves without jobs. */
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
  const registry = new ModelRegistry({ ...config, defaultModel: config.defaultModel });
  const pickup = new ModelPickup(registry, { modelsDir: config.modelsDir, pollMs: config.modelsPollMs, watch: config.modelsWatch });
  await pickup.start();
  const layout = dataLayout(config.dataDir, config.weightsDir);
  const opened = await openJobs({
    database: layout.database,
    registry,
    python: config.python,
    datasetsDir: config.datasetsDir,
    jobsDir: layout.jobsDir,
    modelsDir: layout.modelsDir,
    weightsDir: layout.weightsDir,
    concurrency: config.jobConcurrency,
    cancelGraceMs: config.jobCancelGraceMs,
  });
  const { jobs, db } = 'jobs' in opened ? opened : { jobs: undefined, db: undefined };
  // No crop size here: every request crops to its model's image_size.
  const preprocessor = createPreprocessor({
    maxInputPixels: config.maxInputPixels,
    maxDecodePixelsInFlight: config.maxDecodePixelsInFlight,
    threads: config.preprocessThreads,
  });
  const bodies = createBodyParser({ maxBodyBytes: config.maxBodyBytes });
  const lifecycle: Lifecycle = { shuttingDown: false };
  const app = createApp({ config, registry, preprocessor, bodies, lifecycle, jobs, jobsUnavailable: 'unavailable' in opened ? opened.unavailable : undefined });

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
  if (config.defaultModel && registry.list().every((m) => m.name !== config.defaultModel)) {
    logger.warn({ defaultModel: config.defaultModel, modelsDir: config.modelsDir }, 'FQ_DEFAULT_MODEL is not in the models folder (yet): not ready until it is');
  }
  logger.info({ port, models: registry.list().map((m) => `${m.name}@${m.version}`), default: registry.defaultModel }, 'fqtok listening');

  let closing: Promise<void> | undefined;
  let dropped = 0;
  const close = () =>
    (closing ??= (async () => {
      lifecycle.shuttingDown = true;
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
  return { app, registry, pickup, jobs, db, port, close, droppedAtShutdown: () => dropped };
}
