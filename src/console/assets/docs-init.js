// Starts Swagger UI on /docs (a file, not an inline script, so the page keeps a strict Content-Security-Policy).
const root = document.getElementById('swagger-ui');
window.ui = window.SwaggerUIBundle({
  url: root.dataset.url,
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null, // no badge fetched from another origin
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
