// Liveness, readiness and Prometheus metrics.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from './app-deps.ts';
import { metricsRegistry } from '../metrics.ts';
import { problems } from './schemas.ts';
import { FqError } from '../errors.ts';

const StatusSchema = z.object({ status: z.string(), models: z.number().int().optional() }).openapi('Status');

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  operationId: 'checkLiveness',
  tags: ['service'],
  summary: 'Liveness: the process answers',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: StatusSchema } } } },
});

const readyRoute = createRoute({
  method: 'get',
  path: '/readyz',
  operationId: 'checkReadiness',
  tags: ['service'],
  summary: 'Readiness: models loaded, every version able to serve (no failing worker), not shutting down',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: StatusSchema } } },
    ...problems(503),
  },
});

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  tags: ['service'],
  summary: 'Prometheus metrics: requests and latency per route and status, batch sizes, queue depth, images processed',
  responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
});

export function healthRoutes(deps: AppDeps) {
  const app = new OpenAPIHono();
  return app
    .openapi(healthRoute, (c) => c.json({ status: 'ok' }, 200))
    .openapi(readyRoute, (c) => {
      if (deps.lifecycle.shuttingDown) throw new FqError('unavailable', 'shutting down', { retryAfterSeconds: 1 });
      if (deps.registry.size === 0) throw new FqError('unavailable', 'no model is loaded', { retryAfterSeconds: 5 });
      const models = deps.registry.list();
      const wanted = deps.registry.defaultModel;
      if (wanted && !models.some((m) => m.name === wanted)) {
        throw new FqError('unavailable', `the default model '${wanted}' is not loaded (FQ_DEFAULT_MODEL; not in the models folder)`, { retryAfterSeconds: 5 });
      }
      const broken = models.filter((m) => !m.health.ready);
      if (broken.length > 0) {
        const reasons = broken.map((m) => `${m.name}@${m.version}: ${m.health.reason ?? 'not ready'}`).join('; ');
        throw new FqError('unavailable', `not ready: ${reasons}`, { retryAfterSeconds: 5 });
      }
      return c.json({ status: 'ready', models: models.length }, 200);
    })
    .openapi(metricsRoute, async (c) => c.text(await metricsRegistry.metrics(), 200, { 'content-type': metricsRegistry.contentType }) as never);
}
