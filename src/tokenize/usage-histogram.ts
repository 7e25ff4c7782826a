// A PNG of codebook usage: one panel per codebook, a column per code (or per bin of codes), drawn as raw pixels.
import sharp from 'sharp';

export interface UsagePanel {
  codebook: string;
  counts: ArrayLike<number>;
  /** One line printed above the panel. */
  caption: string;
}

const WIDTH = 1024;
const PANEL = 120;
const CAPTION = 20;
const BAR: [number, number, number] = [40, 90, 170];
const DEAD: [number, number, number] = [210, 40, 40];

/**
 * Bars are log-scaled (log(1 + count)) so rare codes stay visible next to frequent ones; a column whose
 * codes never occur gets a red mark on the baseline, so dead ranges of the codebook show at a glance.
 */
export async function renderUsageHistogram(panels: UsagePanel[]): Promise<Buffer> {
  const height = panels.length * (PANEL + CAPTION);
  const rgb = new Uint8Array(WIDTH * height * 3).fill(255);
  const put = (x: number, y: number, color: readonly number[]) => rgb.set(color, (y * WIDTH + x) * 3);
  panels.forEach((panel, k) => {
    const columns = Math.min(WIDTH, panel.counts.length);
    const perColumn = panel.counts.length / columns;
    const sums = new Float64Array(columns);
    for (let code = 0; code < panel.counts.length; code++) sums[Math.min(columns - 1, Math.floor(code / perColumn))]! += panel.counts[code]!;
    const peak = Math.log1p(Math.max(...sums));
    const base = k * (PANEL + CAPTION) + CAPTION + PANEL - 1;
    const width = Math.floor(WIDTH / columns);
    for (let c = 0; c < columns; c++) {
      const bar = sums[c]! === 0 ? 0 : Math.max(1, Math.round((Math.log1p(sums[c]!) / peak) * (PANEL - 4)));
      for (let dx = 0; dx < width; dx++) {
        if (sums[c] === 0) for (let dy = 0; dy < 3; dy++) put(c * width + dx, base - dy, DEAD);
        for (let dy = 0; dy < bar; dy++) put(c * width + dx, base - dy, BAR);
      }
    }
  });
  const text = panels
    .map((p, k) => `<text x="4" y="${k * (PANEL + CAPTION) + 15}" font-family="sans-serif" font-size="13">${escapeXml(p.caption)}</text>`)
    .join('');
  const captions = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}">${text}</svg>`);
  return sharp(rgb, { raw: { width: WIDTH, height, channels: 3 } })
    .composite([{ input: captions, top: 0, left: 0 }])
    .png()
    .toBuffer();
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
