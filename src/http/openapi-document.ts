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
        'Errors are application/problem+json. Preprocessing is byte-exact with the reference extractor; EXIF orientation is ignored by default (`orientation=ignore`, the reference-exact mode). ' +
        'Admin routes (fine-tuning, model versions) need `Authorization: Bearer $FQ_ADMIN_TOKEN`; the others need nothing.',
      license: { name: 'UNLICENSED: no license is granted (the repository has none)' },
    },
    // Relative: the document describes the server that serves it, wherever it runs.
    servers: [{ url: '/', description: 'This fqtok server' }],
    // No authentication unless an operation says otherwise (the admin routes name bearerAuth).
    security: [],
    tags: [
      { name: 'tokens', description: 'Images to token grids and back, crops, codebook usage' },
      { name: 'models', description: 'Served models and their versions' },
      { name: 'fine-tuning', description: 'Fine-tuning jobs and what they may name (admin)' },
      { name: 'service', description: 'Liveness, readiness, Prometheus metrics' },
    ],
  });
}

export function openApiYaml(app: OpenAPIHono): string {
  return stringify(openApiDocument(app), { aliasDuplicateObjects: false, lineWidth: 0 });
}
