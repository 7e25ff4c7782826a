// Turns @hono/zod-openapi validation failures into FqErrors with field-level details.
import type { Hook } from '@hono/zod-openapi';
import { FqError } from '../errors.ts';

export const validationHook: Hook<unknown, any, any, unknown> = (result) => {
  if (result.success) return;
  const fields = result.error.issues.map((i) => ({
    field: `${result.target}${i.path.length ? '.' : ''}${i.path.join('.')}`,
    message: i.message,
  }));
  const kind = result.target === 'json' && fields.some((f) => f.field.startsWith('json.images')) ? 'bad_tokens' : 'bad_request';
  throw new FqError(kind, `invalid ${result.target}: ${fields.slice(0, 5).map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields: fields.slice(0, 50) });
};
