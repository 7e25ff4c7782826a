// Turns zod validation failures (of @hono/zod-openapi's validators, or of a body parsed off the event loop) into FqErrors with field-level details.
import type { Hook, OpenAPIHono, RouteConfig, z } from '@hono/zod-openapi';
import { FqError } from '../errors.ts';

/** One FqError for the issues of `target` ('query', 'json', ...): 422 for problems inside a grid set, else 400. */
export function validationError(target: string, issues: readonly z.core.$ZodIssue[]): FqError {
  const fields = issues.map((i) => ({
    field: `${target}${i.path.length ? '.' : ''}${i.path.join('.')}`,
    message: i.message,
  }));
  // Problems inside a grid set are about the tokens (422); the rest is a malformed request (400).
  const kind = fields.some((f) => /^json\.(images\.\d+\.)?tokens/.test(f.field)) ? 'bad_tokens' : 'bad_request';
  return new FqError(kind, `invalid ${target}: ${fields.slice(0, 5).map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields: fields.slice(0, 50) });
}

export const validationHook: Hook<unknown, any, any, unknown> = (result) => {
  if (result.success) return;
  throw validationError(result.target, result.error.issues);
};

/**
 * For a route whose body is parsed off the event loop (body-parser.ts): the route as declared goes into
 * the API document, and what is returned (to pass to `app.openapi`) validates the query only, because
 * @hono/zod-openapi would otherwise read and validate a JSON body on the main thread before the handler.
 */
export function documentBodyParseQuery<R extends RouteConfig & { request: { query: NonNullable<NonNullable<RouteConfig['request']>['query']> } }>(
  app: OpenAPIHono<any, any, any>,
  route: R,
) {
  app.openAPIRegistry.registerPath(route);
  return { ...route, hide: true, request: { query: route.request.query } } as Omit<R, 'request'> & { hide: true; request: { query: R['request']['query'] } };
}
