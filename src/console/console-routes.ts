// The web console and the API reference, served by the app itself: pages, their assets, and a strict Content-Security-Policy.
import path from 'node:path';
import { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { swaggerUI } from '@hono/swagger-ui';
import { html } from 'hono/html';
import { jobsPage, modelsPage, NAV, playgroundPage } from './pages.ts';
import { folderFiles, packageFiles, serveFiles } from './static-files.ts';

const ASSETS = folderFiles(path.join(import.meta.dirname, 'assets'));

/** The browser files the console takes from its dependencies, by the name it asks for. */
const VENDOR = packageFiles('uplot', { 'uPlot.esm.js': 'dist/uPlot.esm.js', 'uPlot.min.css': 'dist/uPlot.min.css' });
const SSE_PARSER = packageFiles('eventsource-parser', { 'index.js': 'dist/index.js', 'stream.js': 'dist/stream.js' });
const SWAGGER_UI = packageFiles('swagger-ui-dist', { 'swagger-ui.css': 'swagger-ui.css', 'swagger-ui-bundle.js': 'swagger-ui-bundle.js' });

/**
 * Scripts and styles only from files of this origin (no inline code, no other origin), images also
 * from blob: and data: URLs (decoded images and token grids drawn in the page; Swagger UI's icons).
 */
const strictPolicy = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'blob:', 'data:'],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    formAction: ["'self'"],
    baseUri: ["'none'"],
    frameAncestors: ["'none'"],
  },
  crossOriginEmbedderPolicy: false,
  strictTransportSecurity: false, // TLS, where there is any, ends at a proxy that decides this
});

/** The reference's page: Swagger UI from its npm package, started by a script file (docs-init.js), under the console's bar. */
const docsPage = swaggerUI({
  url: '/openapi.json',
  title: 'API docs · fqtok',
  baseUrl: '/docs/assets',
  manuallySwaggerUIHtml: (asset) =>
    html`<link rel="icon" href="/console/assets/favicon.svg" />
      ${asset.css.map((href) => html`<link rel="stylesheet" href="${href}" />`)}
      <link rel="stylesheet" href="/console/assets/console.css" />
      <header class="topbar">
        <a class="brand" href="/"><img src="/console/assets/favicon.svg" alt="" />fqtok</a>
        <nav>${NAV.map((n) => html`<a href="${n.href}" ${n.href === '/docs' ? html`aria-current="page"` : ''}>${n.label}</a>`)}</nav>
      </header>
      <div id="swagger-ui" data-url="/openapi.json"></div>
      ${asset.js.map((src) => html`<script src="${src}"></script>`)}
      <script src="/console/assets/docs-init.js"></script>`.toString(),
});

export function consoleRoutes() {
  const app = new Hono();
  app.use('/', strictPolicy);
  app.use('/console/*', strictPolicy);
  app.use('/docs', strictPolicy);
  app.use('/docs/*', strictPolicy);
  app.get('/', (c) => c.html(playgroundPage()));
  app.get('/console', (c) => c.redirect('/'));
  app.get('/console/models', (c) => c.html(modelsPage()));
  app.get('/console/jobs', (c) => c.html(jobsPage()));
  app.get('/console/assets/:name', serveFiles(ASSETS));
  app.get('/console/vendor/:name', serveFiles(VENDOR));
  app.get('/console/vendor/eventsource-parser/:name', serveFiles(SSE_PARSER));
  app.get('/docs', docsPage);
  app.get('/docs/assets/swagger-ui-dist/:name', serveFiles(SWAGGER_UI));
  app.get('/favicon.ico', (c) => c.redirect('/console/assets/favicon.svg'));
  return app;
}
