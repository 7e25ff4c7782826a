// The Hono app: middleware and route mounting, nothing else.
import { OpenAPIHono } from '@hono/zod-openapi';
import { requestId } from 'hono/request-id';
import { consoleRoutes } from './console/console-routes.ts';
import { FqError } from './errors.ts';
import type { AppDeps } from './http/app-deps.ts';
import { bodyGuard } from './http/body-guard.ts';
import { cropRoutes } from './http/crop.ts';
import { decodeRoutes } from './http/decode.ts';
import { drainUnreadBody } from './http/drain-body.ts';
import { encodeRoutes } from './http/encode.ts';
import { finetuneOptionRoutes } from './http/finetune-options.ts';
import { healthRoutes } from './http/health.ts';
import { jobRoutes } from './http/jobs.ts';
import { jobSampleRoutes } from './http/job-samples.ts';
import { requestMetrics } from './http/metrics-middleware.ts';
import { statsRoutes } from './http/stats.ts';
import { modelVersionRoutes } from './http/model-versions.ts';
import { modelRoutes } from './http/models.ts';
import { openApiDocument, openApiYaml } from './http/openapi-document.ts';
import { handleError, problemResponse } from './http/problem.ts';

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono();
  app.use(requestId());
  app.use(requestMetrics());
  app.use(drainUnreadBody());
  app.use(async function closeConnectionsWhenShuttingDown(c, next) {
    await next();
    if (deps.lifecycle.shuttingDown) c.header('connection', 'close'); // no keep-alive to wait out
  });
  app.use(
    bodyGuard({
      maxBodyBytes: deps.config.maxBodyBytes,
      maxBytesInFlight: deps.config.maxBodyBytesInFlight,
      idleTimeoutMs: deps.config.bodyIdleTimeoutMs,
    }),
  );
  app.onError(handleError);
  app.notFound((c) => problemResponse(c, new FqError('not_found', `no route for ${c.req.method} ${c.req.path}`)));

  app.route('/', healthRoutes(deps));
  app.route('/', modelRoutes(deps));
  app.route('/', encodeRoutes(deps));
  app.route('/', decodeRoutes(deps));
  app.route('/', statsRoutes(deps));
  app.route('/', jobRoutes(deps));
  app.route('/', modelVersionRoutes(deps));
  app.route('/', cropRoutes(deps));
  app.route('/', finetuneOptionRoutes(deps));
  app.route('/', jobSampleRoutes(deps));
  app.route('/', consoleRoutes());

  app.get('/openapi.yaml', (c) => c.body(openApiYaml(app), 200, { 'content-type': 'application/yaml' }));
  app.get('/openapi.json', (c) => c.json(openApiDocument(app)));
  return app;
}

export type App = ReturnType<typeof createApp>;
