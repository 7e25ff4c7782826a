// After an early error answer, reads what is left of the request body so the keep-alive connection
// stays usable; a client still sending would otherwise see its next request fail with EPIPE.
import type { MiddlewareHandler } from 'hono';

export function drainUnreadBody(): MiddlewareHandler {
  return async function drainUnreadRequestBody(c, next) {
    await next();
    const request = c.req.raw;
    if (c.res.status < 400 || !request.body || request.bodyUsed) return;
    if (c.res.headers.get('connection') === 'close') return; // refused unread (too large, no room) or stalled: the connection goes instead
    if (c.res.status === 413) {
      c.header('connection', 'close'); // too large to read: the connection goes instead
      return;
    }
    await request.arrayBuffer().catch(() => undefined);
  };
}
