// Start-up: config -> model registry -> app -> listen; graceful shutdown on SIGTERM and SIGINT.
import { loadConfig } from './config.ts';
import { logger } from './logger.ts';
import { startServer } from './server.ts';

const config = loadConfig();
const server = await startServer(config);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down: finishing in-flight work');
    server.close().then(
      // Requests cut off by the shutdown grace are a failed shutdown, for whoever supervises the process.
      () => process.exit(server.droppedAtShutdown() > 0 ? 1 : 0),
      (err) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  });
}
