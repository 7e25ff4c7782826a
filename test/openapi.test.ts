// The OpenAPI document: generated from the routes, committed current, and naming every route the app has.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { currentOpenApiYaml, documentationApp } from '../src/cli/openapi-command.ts';
import { consoleRoutes } from '../src/console/console-routes.ts';
import { openApiDocument } from '../src/http/openapi-document.ts';
import { ROOT } from './helpers/server.ts';

test('the committed openapi.yaml is the one the routes generate (run `npm run openapi` after changing a route)', async () => {
  const committed = await readFile(path.join(ROOT, 'openapi.yaml'), 'utf8');
  assert.equal(committed, currentOpenApiYaml());
});

test("every route of the app is in the document and every documented operation is a route", () => {
  const app = documentationApp();
  const doc = openApiDocument(app);
  const documented = new Set(
    Object.entries(doc.paths ?? {}).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`)),
  );
  // The documents themselves and the console's pages and assets are not API operations.
  const notApi = new Set(['GET /openapi.yaml', 'GET /openapi.json', ...consoleRoutes().routes.map((r) => `${r.method} ${r.path}`)]);
  const routes = new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`).filter((r) => !notApi.has(r)));
  assert.deepEqual([...routes].sort(), [...documented].sort());
});
