// The OpenAPI document, generated from the routes' schemas (served at /openapi.yaml, committed as openapi.yaml).
import type { OpenAPIHono } from '@hono/zod-openapi';
import { stringify } from 'yaml';

export function openApiDocument(app: OpenAPIHono) {
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'fqtok',
      version: '0.1.0',
      description:
        'FQGAN image tokenization: images to token grids (POST /encode) and back (POST /decode). ' +
        'Errors are application/problem+json. Preprocessing is byte-exact with the reference extractor; EXIF orientation is ignored by default (`orientation=ignore`, the reference-exact mode).',
    },
  });
}

export function openApiYaml(app: OpenAPIHono): string {
  return stringify(openApiDocument(app), { aliasDuplicateObjects: false, lineWidth: 0 });
}
