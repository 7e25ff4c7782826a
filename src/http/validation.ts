// Turns @hono/zod-openapi validation failures into FqErrors with field-level details.
import type { Hook } from '@hono/zod-openapi';
import { FqError } from '../errors.ts';

export const validationHook: Hook<unknown, any, any, unknown> = (result) => {
  if (result.success) return;
  const fields = result.error.issues.map((i) => ({
    field: `${result.target}${i.path.length ? '.' : ''}${i.path.join('.')}`,
    message: i.message,
  }));
  // Problems inside a grid set are about the tokens (422); the rest is a malformed request (400).
  const kind = fields.some((f) => /^json\.(images\.\d+\.)?tokens/.test(f.field)) ? 'bad_tokens' : 'bad_request';
  throw new FqError(kind, `invalid ${result.target}: ${fields.slice(0, 5).map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields: fields.slice(0, 50) });
};
