// Records every request's count and latency by matched route, method and status.
import type { MiddlewareHandler } from 'hono';
import { httpDuration, httpRequests } from '../metrics.ts';

export function requestMetrics(): MiddlewareHandler {
  return async function recordRequestMetrics(c, next) {
    const started = performance.now();
    await next();
    const labels = { route: c.req.routePath || 'unmatched', method: c.req.method, status: String(c.res.status) };
    httpRequests.inc(labels);
    httpDuration.observe(labels, (performance.now() - started) / 1000);
  };
}
