// Playground: an image in; its crop, token grids, full and partial reconstructions, views, timings and downloads out.
import { call, getJson, postJson, rememberCodes } from './api.js';
import { $, base64Blob, clearError, download, formatMs, h, setBlob, showError } from './dom.js';
import { weightsOf } from './model-facts.js';
import { gridFigure } from './token-grid.js';

const els = {
  file: $('#file'), dropzone: $('#dropzone'), model: $('#model'), version: $('#version'), augment: $('#augment'),
  orientation: $('#orientation'), facts: $('#model-facts'), timings: $('#timings'), status: $('#status'),
  downloadJson: $('#download-json'), downloadNpz: $('#download-npz'),
};
const state = { file: null, model: null, result: null, run: 0 };

const setStatus = (text) => (els.status.textContent = text);
const params = new URLSearchParams(location.search);

async function loadModels() {
  const { default: fallback, models } = await getJson('/models');
  const wanted = params.get('model');
  els.model.replaceChildren(...models.map((m) => h('option', { value: m.name, selected: m.name === (wanted ?? fallback) }, m.name + (m.default ? ' (default)' : ''))));
  await loadVersions(params.get('version'));
}

async function loadVersions(wanted) {
  const detail = await getJson(`/models/${encodeURIComponent(els.model.value)}`);
  const versions = [...detail.versions].sort((a, b) => b - a);
  els.version.replaceChildren(...versions.map((v, i) => h('option', { value: v, selected: wanted ? String(v) === wanted : i === 0 }, `v${v}${i === 0 ? ' (latest)' : ''}`)));
  await loadModel();
}

async function loadModel() {
  const m = await getJson(`/models/${encodeURIComponent(els.model.value)}?version=${els.version.value}`);
  state.model = m;
  const facts = [
    ['Variant', `${m.variant}, downsample ${m.downsample}`],
    ['Image', `${m.image_size}×${m.image_size} → grid ${m.grid[0]}×${m.grid[1]}`],
    ['Codebooks', m.codebooks.map((c) => `${c.name} (${c.size})`).join(', ')],
    ['Runs on', `${m.backend} · ${m.device} · ${m.precision}`],
    ['Weights', weightsOf(m.manifest)],
    ['Ready', m.ready ? 'yes' : `no: ${m.not_ready_reason ?? 'starting'}`],
  ];
  els.facts.replaceChildren(...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  document.body.dataset.model = `${m.name}@${m.version}`;
}

function options() {
  return { model: els.model.value, version: els.version.value, augment: els.augment.value, orientation: els.orientation.value };
}

function form(extra = {}) {
  const body = new FormData();
  body.append('image', state.file, state.file.name);
  for (const [k, v] of Object.entries({ ...options(), ...extra })) body.append(k, v);
  return body;
}

/** The server's own figure from a Server-Timing header (`encode;dur=12.3`), if any. */
function serverMs(res, name) {
  const match = new RegExp(`${name};dur=([\\d.]+)`).exec(res.headers.get('server-timing') ?? '');
  return match ? Number(match[1]) : undefined;
}

async function timed(fn) {
  const started = performance.now();
  const value = await fn();
  return [value, performance.now() - started];
}

async function tokenize() {
  if (!state.file || !state.model) return;
  const run = ++state.run;
  const current = () => run === state.run;
  clearError();
  document.body.dataset.state = 'working';
  setStatus(`Tokenizing ${state.file.name}…`);
  try {
    const opts = options();
    const [crops, cropMs] = await timed(() => call('/crop', { method: 'POST', body: form(), headers: { accept: 'application/json' } }).then((r) => r.json()));
    const [encodeRes, encodeMs] = await timed(() => call('/encode', { method: 'POST', body: form() }));
    const encoded = await encodeRes.json();
    rememberCodes(encoded.model, encoded.version, encoded.images);
    const images = encoded.images.map((i) => ({ tokens: i.tokens }));
    const [decodeRes, decodeMs] = await timed(() => postJson('/decode', { model: opts.model, version: Number(opts.version), images }, { headers: { accept: 'application/json' } }));
    const decoded = await decodeRes.json();
    if (!current()) return;
    state.result = { crops, encoded, decoded, opts };
    state.timings = [
      ['Crop', cropMs],
      ['Encode', encodeMs, serverMs(encodeRes, 'encode')],
      [`Decode (${images.length} view${images.length > 1 ? 's' : ''})`, decodeMs, serverMs(decodeRes, 'decode')],
    ];
    els.downloadJson.disabled = els.downloadNpz.disabled = false;
    renderViews();
    await showView(0, run);
  } catch (err) {
    if (current()) {
      showError(err);
      setStatus('The image could not be tokenized.');
      document.body.dataset.state = 'error';
    }
  }
}

function renderTimings(extra = []) {
  const rows = [...state.timings, ...extra];
  els.timings.replaceChildren(
    ...rows.flatMap(([name, ms, server]) => [h('dt', {}, name), h('dd', {}, formatMs(ms), server !== undefined ? h('span.muted', {}, ` (server ${formatMs(server)})`) : '')]),
  );
}

function renderViews() {
  const { crops, decoded } = state.result;
  const section = $('#views-section');
  section.hidden = crops.views.length < 2;
  $('#views').replaceChildren(
    ...crops.views.map((view, k) => {
      const button = h('button.tile', { type: 'button', dataset: { view: k }, onclick: () => showView(k, state.run) });
      const crop = h('img', { alt: `${view} crop` });
      const recon = h('img', { alt: `${view} reconstruction` });
      setBlob(crop, base64Blob(crops.images[k].data, 'image/png'));
      setBlob(recon, base64Blob(decoded.images[k].data, decoded.images[k].content_type));
      button.append(h('span.pair-small', {}, crop, recon), h('span.label', {}, view.replaceAll('_', ' ')));
      return button;
    }),
  );
}

/** Every non-empty subset of the codebooks except all of them, smallest first, in model order. */
function partialSets(names) {
  const sets = [];
  for (let mask = 1; mask < (1 << names.length) - 1; mask++) sets.push(names.filter((_, i) => mask & (1 << i)));
  return sets.sort((a, b) => a.length - b.length);
}

async function showView(k, run) {
  const { crops, encoded, decoded, opts } = state.result;
  const view = crops.views[k];
  document.querySelectorAll('#views .tile').forEach((t) => t.classList.toggle('selected', Number(t.dataset.view) === k));
  setStatus(`${state.file.name}: ${encoded.model} v${encoded.version}, ${view.replaceAll('_', ' ')} view, grid ${encoded.grid[0]}×${encoded.grid[1]}.`);
  $('#overview').hidden = false;
  $('#crop-size').textContent = `(${crops.image_size}×${crops.image_size})`;
  await Promise.all([
    setBlob($('#crop'), base64Blob(crops.images[k].data, 'image/png')),
    setBlob($('#reconstruction'), base64Blob(decoded.images[k].data, decoded.images[k].content_type)),
  ]);
  const tokens = encoded.images[k].tokens;
  const sizes = Object.fromEntries(state.model.codebooks.map((c) => [c.name, c.size]));
  const figures = await Promise.all(encoded.codebooks.map((name) => gridFigure(name, tokens[name], sizes[name])));
  if (run !== state.run) return;
  $('#grids').replaceChildren(...figures);
  $('#grids-section').hidden = false;

  const sets = partialSets(encoded.codebooks);
  $('#partials-section').hidden = sets.length === 0;
  const tiles = sets.map((set) => {
    const img = h('img.partial', { alt: `Decoded from ${set.join(' + ')}` });
    return { set, img, tile: h('figure.tile', {}, img, h('figcaption', {}, set.join(' + '))) };
  });
  $('#partials').replaceChildren(...tiles.map((t) => t.tile));
  const [, partialMs] = await timed(() =>
    Promise.all(
      tiles.map(async ({ set, img }) => {
        const res = await postJson('/decode', { model: opts.model, version: Number(opts.version), codebooks: set, images: [{ tokens }] });
        await setBlob(img, await res.blob());
      }),
    ),
  );
  if (run !== state.run) return;
  renderTimings(sets.length ? [[`Partial decodes (${sets.length})`, partialMs]] : []);
  document.body.dataset.state = 'done';
}

function choose(file) {
  if (!file) return;
  state.file = file;
  tokenize();
}

els.file.addEventListener('change', () => choose(els.file.files[0]));
els.dropzone.addEventListener('dragover', (e) => {
  e.preventDefault();
  els.dropzone.classList.add('over');
});
els.dropzone.addEventListener('dragleave', () => els.dropzone.classList.remove('over'));
els.dropzone.addEventListener('drop', (e) => {
  e.preventDefault();
  els.dropzone.classList.remove('over');
  choose(e.dataTransfer.files[0]);
});
els.model.addEventListener('change', () => loadVersions().then(tokenize).catch(showError));
els.version.addEventListener('change', () => loadModel().then(tokenize).catch(showError));
els.augment.addEventListener('change', tokenize);
els.orientation.addEventListener('change', tokenize);
els.downloadJson.addEventListener('click', () => {
  const { encoded } = state.result;
  download(new Blob([JSON.stringify(encoded, null, 2)], { type: 'application/json' }), `${state.file.name}.tokens.json`);
});
els.downloadNpz.addEventListener('click', async () => {
  try {
    const res = await call('/encode', { method: 'POST', body: form({ format: 'npz' }) });
    download(await res.blob(), `${state.file.name}.tokens.npz`);
  } catch (err) {
    showError(err);
  }
});

loadModels()
  .then(() => (document.body.dataset.ready = 'true'))
  .catch(showError);
