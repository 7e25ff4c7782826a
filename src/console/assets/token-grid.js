// Token grids drawn as images: one colour per code (the same code, the same colour), with the index under the pointer.
import { $, h, setBlob } from './dom.js';

/** A stable, well-spread colour per code: a multiplicative hash picks hue, saturation and lightness. */
export function codeColour(code) {
  const x = Math.imul(code + 1, 2654435761) >>> 0;
  const hue = x % 360;
  const saturation = 55 + ((x >>> 9) % 30);
  const lightness = 42 + ((x >>> 17) % 26);
  return `hsl(${hue} ${saturation}% ${lightness}%)`;
}

/** rows: h arrays of w codes -> a PNG Blob with one pixel per cell (scaled up, pixelated, by CSS). */
export function gridBlob(rows) {
  const height = rows.length;
  const width = rows[0]?.length ?? 0;
  const canvas = h('canvas', { width, height });
  const ctx = canvas.getContext('2d');
  rows.forEach((row, y) =>
    row.forEach((code, x) => {
      ctx.fillStyle = codeColour(code);
      ctx.fillRect(x, y, 1, 1);
    }),
  );
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
}

/** A figure with the grid's image and a caption; hovering a cell shows row, column and code. Resolves when loaded. */
export async function gridFigure(name, rows, size) {
  const img = h('img.grid', { alt: `Token grid of ${name}`, dataset: { codebook: name } });
  const distinct = new Set(rows.flat()).size;
  const figure = h('figure.grid-figure', {}, img, h('figcaption', {}, h('strong', {}, name), ` ${rows.length}×${rows[0].length}, ${distinct} distinct of ${size}`));
  const tooltip = $('#tooltip');
  img.addEventListener('mousemove', (event) => {
    const x = Math.min(rows[0].length - 1, Math.floor((event.offsetX / img.clientWidth) * rows[0].length));
    const y = Math.min(rows.length - 1, Math.floor((event.offsetY / img.clientHeight) * rows.length));
    tooltip.textContent = `${name} [${y}, ${x}]: code ${rows[y][x]}`;
    tooltip.style.left = `${event.pageX + 14}px`;
    tooltip.style.top = `${event.pageY + 14}px`;
    tooltip.hidden = false;
  });
  img.addEventListener('mouseleave', () => (tooltip.hidden = true));
  await setBlob(img, await gridBlob(rows));
  return figure;
}
