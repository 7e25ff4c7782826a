// Models: every served model and version (backend, provider, precision, readiness, manifest facts) and codebook usage charts.
import { call, getJson, postJson, recentCodes } from './api.js';
import { lineChart } from './charts.js';
import { $, blobImage, clearError, formatNumber, h, showError } from './dom.js';
import { weightsOf } from './model-facts.js';

const TOP = 1000; // the most /stats lists: enough for the head of the rank-frequency curve

async function versionDetails(name, versions) {
  return Promise.all(versions.map((v) => getJson(`/models/${encodeURIComponent(name)}?version=${v}`)));
}

function readyBadge(m) {
  return m.ready ? h('span.badge.ready', {}, 'ready') : h('span.badge.not-ready', { title: m.not_ready_reason ?? '' }, 'not ready');
}

function modelCard(latest, versions) {
  const m = versions.find((v) => v.version === latest.version) ?? versions[0];
  const facts = [
    ['Variant', `${m.variant}, downsample ${m.downsample}`],
    ['Image', `${m.image_size}×${m.image_size} px → ${m.grid[0]}×${m.grid[1]} tokens per codebook`],
    ['Weights', weightsOf(m.manifest)],
    ['Preset', m.manifest.preset ?? '—'],
    ['Produced by', [m.manifest.produced_by?.tool, m.manifest.produced_by?.created_at?.slice(0, 10)].filter(Boolean).join(', ') || '—'],
    ['Checkpoint sha256', m.manifest.source?.sha256 ? `${m.manifest.source.sha256.slice(0, 16)}…` : '—'],
  ];
  return h(
    'section.card.model-card',
    { dataset: { model: m.name } },
    h('h2', {}, m.name, m.default ? h('span.badge', {}, 'default') : null),
    h('dl.facts', {}, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h3', {}, 'Codebooks'),
    h('table.list', {}, h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'codes'), h('th', {}, 'dim'))),
      h('tbody', {}, m.codebooks.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, formatNumber(c.size)), h('td', {}, c.dim))))),
    h('h3', {}, 'Versions'),
    h('table.list', {},
      h('thead', {}, h('tr', {}, ['version', 'backend', 'device', 'provider', 'precision', 'state'].map((t) => h('th', {}, t)))),
      h('tbody', {}, versions.map((v) => h('tr', { dataset: { version: v.version } },
        h('td', {}, h('a', { href: `/?model=${encodeURIComponent(v.name)}&version=${v.version}`, title: 'Open in the playground' }, `v${v.version}`)),
        h('td', {}, v.backend), h('td', {}, v.device), h('td', {}, v.execution_provider), h('td', {}, v.precision), h('td', {}, readyBadge(v)))))),
    h('details', {}, h('summary', {}, 'Manifest'), h('pre.manifest', {}, JSON.stringify(m.manifest, null, 2))),
  );
}

async function loadModels() {
  const { models } = await getJson('/models');
  const cards = await Promise.all(
    models.map(async (latest) => {
      const detail = await getJson(`/models/${encodeURIComponent(latest.name)}`);
      return modelCard(latest, await versionDetails(latest.name, [...detail.versions].sort((a, b) => b - a)));
    }),
  );
  $('#models').replaceChildren(...cards);
  const select = $('#usage-model');
  select.replaceChildren(...models.map((m) => h('option', { value: `${m.name}@${m.version}` }, `${m.name} v${m.version}`)));
  for (const m of models) {
    const detail = await getJson(`/models/${encodeURIComponent(m.name)}`);
    for (const v of detail.versions) if (v !== m.version) select.append(h('option', { value: `${m.name}@${v}` }, `${m.name} v${v}`));
  }
  updateRecentCount();
}

function selected() {
  const [model, version] = $('#usage-model').value.split('@');
  return { model, version: Number(version) };
}

function updateRecentCount() {
  const count = (recentCodes()[$('#usage-model').value] ?? []).length;
  $('#usage-recent').textContent = `Recent encodes (${count} image${count === 1 ? '' : 's'})`;
  $('#usage-recent').disabled = count === 0;
}

async function showUsage(source, send) {
  clearError();
  const { model, version } = selected();
  const query = `model=${encodeURIComponent(model)}&version=${version}`;
  const [stats, histogram] = await Promise.all([
    send(`/stats?${query}&top=${TOP}`, {}).then((r) => r.json()),
    send(`/stats?${query}&format=png`, { accept: 'image/png' }).then((r) => r.blob()),
  ]);
  const result = $('#usage-result');
  const chart = h('div.chart');
  result.replaceChildren(
    h('p.hint', {}, `${source}: ${stats.images} image${stats.images === 1 ? '' : 's'}, ${stats.model} v${stats.version}.`),
    h('table.list.usage-summary', {},
      h('thead', {}, h('tr', {}, ['codebook', 'tokens', 'codes used', 'dead codes', 'usage', 'perplexity'].map((t) => h('th', {}, t)))),
      h('tbody', {}, stats.codebooks.map((c) => h('tr', {}, h('td', {}, c.codebook), h('td', {}, formatNumber(c.tokens)),
        h('td', {}, `${formatNumber(c.used)} of ${formatNumber(c.size)}`), h('td', {}, formatNumber(c.dead)),
        h('td', {}, `${(100 * c.usage).toFixed(2)} %`), h('td', {}, formatNumber(c.perplexity, 4)))))),
    chart,
    await blobImage(histogram, { class: 'histogram', alt: 'Histogram of every code, dead codes in red' }),
  );
  const names = stats.codebooks.map((c) => c.codebook);
  const plot = lineChart(chart, { title: `Code frequency by rank (top ${TOP})`, xLabel: 'rank', series: names, log: true });
  const longest = Math.max(...stats.codebooks.map((c) => c.top.length));
  for (let rank = 0; rank < longest; rank++) {
    plot.add(rank + 1, Object.fromEntries(stats.codebooks.map((c) => [c.codebook, c.top[rank]?.count ?? null])));
  }
  result.dataset.points = String(plot.count());
}

$('#usage-model').addEventListener('change', updateRecentCount);
$('#usage-recent').addEventListener('click', () => {
  const images = recentCodes()[$('#usage-model').value] ?? [];
  showUsage('Images encoded in the playground in this tab', (path, headers) => postJson(path, { images }, { headers })).catch(showError);
});
$('#usage-npz').addEventListener('change', (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showUsage(`Codes from ${file.name}`, (path, headers) => call(path, { method: 'POST', body: file, headers: { 'content-type': 'application/x-npz', ...headers } }))
    .catch(showError)
    .finally(() => (event.target.value = ''));
});

loadModels()
  .then(() => (document.body.dataset.ready = 'true'))
  .catch(showError);
