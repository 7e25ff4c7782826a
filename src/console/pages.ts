// The console's pages: static shells (no inline script or style) that their modules in assets/ fill from the public HTTP API.
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export const NAV = [
  { href: '/', label: 'Playground' },
  { href: '/console/models', label: 'Models' },
  { href: '/console/jobs', label: 'Jobs' },
  { href: '/docs', label: 'API docs' },
] as const;

function layout(page: { title: string; path: string; script: string }, body: Html): Html {
  return html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${page.title} · fqtok</title>
    <link rel="icon" href="/console/assets/favicon.svg" />
    <link rel="stylesheet" href="/console/vendor/uPlot.min.css" />
    <link rel="stylesheet" href="/console/assets/console.css" />
    <script type="module" src="/console/assets/${page.script}.js"></script>
  </head>
  <body>
    <header class="topbar">
      <a class="brand" href="/"><img src="/console/assets/favicon.svg" alt="" />fqtok</a>
      <nav>${NAV.map((n) => html`<a href="${n.href}" ${n.href === page.path ? html`aria-current="page"` : ''}>${n.label}</a>`)}</nav>
    </header>
    <main>${body}</main>
  </body>
</html>`;
}

export const playgroundPage = () =>
  layout(
    { title: 'Playground', path: '/', script: 'playground' },
    html`<div class="playground">
      <aside class="card controls">
        <label class="dropzone" id="dropzone">
          <input type="file" id="file" accept="image/*" />
          <strong>Drop an image here</strong>
          <span>or click to choose one</span>
        </label>
        <div class="field"><label for="model">Model</label><select id="model"></select></div>
        <div class="field"><label for="version">Version</label><select id="version"></select></div>
        <div class="field">
          <label for="augment">Views</label>
          <select id="augment">
            <option value="none">Centre crop</option>
            <option value="flip">Centre crop and its mirror</option>
            <option value="ten_crop">Ten crops</option>
          </select>
        </div>
        <div class="field">
          <label for="orientation">EXIF orientation</label>
          <select id="orientation">
            <option value="ignore">Ignore (reference-exact)</option>
            <option value="exif">Turn upright</option>
          </select>
        </div>
        <dl class="facts" id="model-facts"></dl>
        <div class="buttons">
          <button type="button" id="download-json" disabled>Download JSON</button>
          <button type="button" id="download-npz" disabled>Download NPZ</button>
        </div>
        <h3>Timings</h3>
        <dl class="facts" id="timings"><dt>—</dt><dd>no image yet</dd></dl>
      </aside>
      <div class="results">
        <p class="notice" id="status" role="status">Choose an image to see its crop, its token grids and what the decoder makes of them.</p>
        <div class="alert" id="error" role="alert" hidden></div>
        <section class="card" id="overview" hidden>
          <div class="pair">
            <figure><img id="crop" alt="The crop that was tokenized" /><figcaption>Crop that was tokenized <span id="crop-size" class="muted"></span></figcaption></figure>
            <figure><img id="reconstruction" alt="Reconstruction from every codebook" /><figcaption>Reconstruction from every codebook</figcaption></figure>
          </div>
        </section>
        <section class="card" id="grids-section" hidden>
          <h2>Token grids</h2>
          <p class="hint">One colour per code; hover a cell for its position and index.</p>
          <div class="grids" id="grids"></div>
        </section>
        <section class="card" id="partials-section" hidden>
          <h2>Partial reconstructions</h2>
          <p class="hint">Decoded from some codebooks only; the others are zeroed through the decoder's mask.</p>
          <div class="tiles" id="partials"></div>
        </section>
        <section class="card" id="views-section" hidden>
          <h2>Views</h2>
          <p class="hint">Each view is tokenized on its own; pick one to see its grids and partial reconstructions above.</p>
          <div class="tiles" id="views"></div>
        </section>
      </div>
    </div>
    <div class="tooltip" id="tooltip" hidden></div>`,
  );

export const modelsPage = () =>
  layout(
    { title: 'Models', path: '/console/models', script: 'models' },
    html`<h1>Models</h1>
      <div class="alert" id="error" role="alert" hidden></div>
      <div class="model-list" id="models"><p class="notice">Loading…</p></div>
      <section class="card" id="usage">
        <h2>Codebook usage</h2>
        <p class="hint">How many codes a set of token grids uses, and how evenly: from the images encoded in the playground in this tab, or from an NPZ of codes (as /encode or <code>fqtok encode</code> write them).</p>
        <div class="toolbar">
          <label for="usage-model">Model</label>
          <select id="usage-model"></select>
          <button type="button" id="usage-recent">Recent encodes</button>
          <label class="button" for="usage-npz">Upload NPZ…</label>
          <input type="file" id="usage-npz" accept=".npz,application/x-npz" class="visually-hidden" />
        </div>
        <div id="usage-result"></div>
      </section>`,
  );

export const jobsPage = () =>
  layout(
    { title: 'Jobs', path: '/console/jobs', script: 'jobs' },
    html`<div class="alert" id="error" role="alert" hidden></div>
      <section class="card token-gate" id="token-gate" hidden>
        <h2>Admin token</h2>
        <p>Fine-tuning jobs are admin routes. The token (<code>FQ_ADMIN_TOKEN</code>) is asked once per tab, kept in this tab's session storage, and sent only as an <code>Authorization: Bearer</code> header.</p>
        <form id="token-form" class="toolbar">
          <input type="password" id="token" autocomplete="off" placeholder="Admin token" required />
          <button type="submit" class="primary">Unlock</button>
        </form>
      </section>
      <div class="jobs" id="jobs-ui" hidden>
        <div class="jobs-side">
          <section class="card">
            <div class="card-head">
              <h2>Jobs</h2>
              <span class="spacer"></span>
              <button type="button" id="refresh">Refresh</button>
              <button type="button" id="forget-token" class="quiet">Forget token</button>
            </div>
            <table class="list" id="job-list">
              <thead><tr><th>Job</th><th>Status</th><th>Progress</th><th>Created</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section class="card">
            <h2>New fine-tune</h2>
            <form id="job-form" novalidate><p class="notice">Loading…</p></form>
          </section>
        </div>
        <section class="job-view" id="job-view">
          <div class="card"><p class="notice">Choose a job, or start one.</p></div>
        </section>
      </div>`,
  );
