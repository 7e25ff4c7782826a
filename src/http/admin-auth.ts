// Bearer-token guard for admin routes: off (404, saying why) on a serving replica or without FQ_ADMIN_TOKEN, 401 without a token, 403 for a wrong one.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Config } from '../config.ts';
import { FqError } from '../errors.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function adminAuth({ role, adminToken }: Pick<Config, 'role' | 'adminToken'>): MiddlewareHandler {
  // Comparing fixed-length digests keeps the comparison constant-time whatever the caller sends.
  const expected = adminToken ? digest(adminToken) : undefined;
  return async function requireAdminToken(c, next) {
    if (role === 'replica') throw new FqError('disabled', 'admin routes are served by the admin instance (FQ_ROLE=admin); this is a serving replica');
    if (!expected) throw new FqError('disabled', 'admin routes are off: set FQ_ADMIN_TOKEN to enable them');
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new FqError('unauthorized', 'admin routes need an Authorization: Bearer <FQ_ADMIN_TOKEN> header');
    if (!timingSafeEqual(digest(match[1]!), expected)) throw new FqError('forbidden', 'the bearer token is not the admin token');
    await next();
  };
}
