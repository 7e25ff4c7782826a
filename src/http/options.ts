// Small helpers shared by route handlers: option parsing with field-level errors, media types, content negotiation.
import type { Context } from 'hono';
import type { z } from '@hono/zod-openapi';
import { FqError } from '../errors.ts';

/** Parses with a zod schema; failures become one 400 naming every bad field. */
export function parseFields<T extends z.ZodTypeAny>(schema: T, value: unknown, where: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => ({ field: i.path.join('.') || where, message: i.message }));
  throw new FqError('bad_request', `invalid ${where}: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields });
}

/** `a,b` or ['a','b'] -> ['a','b']; undefined stays undefined. */
export function listOption(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',');
  return items.map((s) => s.trim()).filter(Boolean);
}

/** The media type of a Content-Type value or an Accept entry: parameters dropped, lower-cased. */
export function mediaTypeOf(value: string): string {
  return value.split(';')[0]!.trim().toLowerCase();
}

/** The request body's media type; '' when there is no Content-Type. */
export function requestMediaType(c: Context): string {
  return mediaTypeOf(c.req.header('content-type') ?? '');
}

/** True when the Accept header asks for `type` (and prefers it over JSON). */
export function accepts(c: Context, type: string): boolean {
  const accept = c.req.header('accept') ?? '';
  return accept.split(',').some((part) => mediaTypeOf(part) === type);
}
