// Small DOM helpers shared by the console's pages: element building, error display, number formatting.

/** h('div.card#id', {attrs}, children...): an element; strings become text nodes (never parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || 'div');
  for (const part of rest) {
    if (part.startsWith('.')) el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : String(child));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Shows an error (an ApiError's problem detail and field errors, or any Error) in the page's alert box. */
export function showError(err, box = $('#error')) {
  if (!box) return;
  const problem = err?.problem ?? {};
  box.replaceChildren(
    h('strong', {}, problem.title ? `${problem.title}${err.status ? ` (${err.status})` : ''}` : 'Something went wrong'),
    h('p', {}, err?.message ?? String(err)),
    ...(problem.errors?.length ? [h('ul', {}, problem.errors.map((e) => h('li', {}, `${e.field}: ${e.message}`)))] : []),
  );
  box.hidden = false;
}

export function clearError(box = $('#error')) {
  if (box) box.hidden = true;
}

export const formatMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  if (Number.isInteger(value)) return value.toLocaleString('en');
  return Math.abs(value) >= 1000 || Math.abs(value) < 0.001 ? value.toExponential(2) : value.toPrecision(digits);
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'medium' });
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

/** A download of `blob` under `name`, through a temporary blob: URL. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** An <img> for a Blob (e.g. a PNG the API returned); resolves once it has loaded. */
export function blobImage(blob, attrs = {}) {
  const img = h('img', attrs);
  return setBlob(img, blob).then(() => img);
}

/** Points an <img> at a Blob, freeing the previous blob: URL; resolves when the image has loaded. */
export function setBlob(img, blob) {
  if (img.dataset.blobUrl) URL.revokeObjectURL(img.dataset.blobUrl);
  const url = URL.createObjectURL(blob);
  img.dataset.blobUrl = url;
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the image did not load'));
    img.src = url;
  });
}

export function base64Blob(data, type) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}
