// Errors as application/problem+json (RFC 9457): one renderer for every error the app throws.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { FqError, type ErrorKind } from '../errors.ts';
import { logger } from '../logger.ts';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  request_id?: string;
  item?: number;
  errors?: { field: string; message: string }[];
}

/** The one table from error kind to HTTP status: the domain names what went wrong, the edge how to say it. */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  bad_request: 400,
  bad_image: 422,
  too_large: 413,
  unsupported_media_type: 415,
  not_acceptable: 406,
  bad_tokens: 422,
  validation: 422,
  unknown_model: 404,
  not_found: 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  disabled: 404,
  overloaded: 503,
  timeout: 504,
  request_timeout: 408,
  unavailable: 503,
  insufficient_storage: 507,
  internal: 500,
};

const TITLES: Record<ErrorKind, string> = {
  bad_request: 'Bad request',
  bad_image: 'Unreadable image',
  too_large: 'Too large',
  unsupported_media_type: 'Unsupported media type',
  not_acceptable: 'Not acceptable',
  bad_tokens: 'Invalid token grids',
  validation: 'Validation failed',
  unknown_model: 'Unknown model',
  not_found: 'Not found',
  conflict: 'Conflict',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  disabled: 'Disabled',
  overloaded: 'Overloaded',
  timeout: 'Timed out',
  request_timeout: 'Request timeout',
  unavailable: 'Unavailable',
  insufficient_storage: 'Insufficient storage',
  internal: 'Internal error',
};

function kindOfHttpStatus(status: number): ErrorKind {
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported_media_type';
  if (status === 404) return 'not_found';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  return status >= 500 ? 'internal' : 'bad_request';
}

/** Longest detail answered or logged: the messages quote what the client sent, and that may be huge. */
const MAX_DETAIL = 2000;
const capped = (text: string) => (text.length <= MAX_DETAIL ? text : `${text.slice(0, MAX_DETAIL)}... (${text.length - MAX_DETAIL} more characters)`);

export function problemResponse(c: Context, err: FqError): Response {
  const status = STATUS_BY_KIND[err.kind];
  const body: Problem = {
    type: `https://fqtok.dev/problems/${err.kind.replaceAll('_', '-')}`,
    title: TITLES[err.kind],
    status,
    detail: capped(err.message),
    instance: capped(c.req.path),
    request_id: c.get('requestId'),
    ...(err.item !== undefined ? { item: err.item } : {}),
    ...(err.fields ? { errors: err.fields } : {}),
  };
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  if (err.kind === 'unauthorized') headers['www-authenticate'] = 'Bearer';
  return new Response(JSON.stringify(body), { status, headers });
}

/** `Name: message` of an error and of each error in its `cause` chain, outermost first. */
export function causeChain(err: unknown): string[] {
  const chain: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = err; e !== undefined && e !== null && !seen.has(e) && chain.length < 10; e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    chain.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  return chain;
}

/**
 * The app's onError: known errors keep their kind; anything else becomes a 500. Every 5xx is logged
 * once, at error level, with the request id and the cause chain; refusals (4xx) at info.
 */
export function handleError(err: Error, c: Context): Response {
  let problem: FqError;
  if (err instanceof FqError) {
    problem = err;
  } else if (err instanceof HTTPException && err.status === 415) {
    const type = c.req.header('content-type') ?? '(none)';
    problem = new FqError('unsupported_media_type', `content type '${type}' is not accepted by ${c.req.method} ${c.req.path}; see /openapi.yaml`);
  } else if (err instanceof HTTPException) {
    problem = new FqError(kindOfHttpStatus(err.status), err.message || `HTTP ${err.status}`, { cause: err });
  } else {
    problem = new FqError('internal', 'internal error; the request id identifies it in the logs', { cause: err });
  }
  const status = STATUS_BY_KIND[problem.kind];
  const context = { requestId: c.get('requestId'), method: c.req.method, path: capped(c.req.path), status, kind: problem.kind, detail: capped(problem.message) };
  if (status >= 500) logger.error({ ...context, causes: causeChain(problem), err: problem }, 'request failed');
  else logger.info(context, 'request refused');
  return problemResponse(c, problem);
}
