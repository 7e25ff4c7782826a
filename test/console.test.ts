// The web console in a real browser (Debian's chromium, puppeteer-core): playground, models, API docs, and a fine-tune started and watched from the jobs page.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import type { ElementHandle, Page } from 'puppeteer-core';
import { launchBrowser, openTab, type TestBrowser } from './helpers/browser.ts';
import { ADMIN_TOKEN, makeDataset } from './helpers/finetune.ts';
import { exportModel } from './helpers/export-model.ts';
import { PYTHON } from './helpers/python.ts';
import { waitFor } from './helpers/wait.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

/** Screenshots land here; CI keeps the folder (copies chosen for the README are committed under docs/screenshots). */
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts', 'console');
const SHIPPED = 'fqgan-triple-vq16-tiny';

let tmp: string;
let server: TestServer;
let chromium: TestBrowser;
let photo: string;

/** A photo-like JPEG: a rendered landscape with sensor-like noise, 960x640 (not square, so the crop matters). */
async function makePhoto(file: string): Promise<void> {
  const scene = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="960" height="640">
      <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#4f8fdc"/><stop offset="1" stop-color="#f1dcb0"/></linearGradient></defs>
      <rect width="960" height="640" fill="url(#sky)"/>
      <circle cx="700" cy="150" r="64" fill="#ffd35a"/>
      <path d="M0 430 L190 250 L340 390 L520 210 L760 420 L960 330 L960 640 L0 640 Z" fill="#3d6b46"/>
      <path d="M0 520 Q 480 450 960 540 L960 640 L0 640 Z" fill="#6f8f3a"/>
      <rect x="380" y="440" width="170" height="110" fill="#9c5a34"/><path d="M360 442 L465 372 L570 442 Z" fill="#6e2b1c"/>
      <rect x="450" y="490" width="34" height="60" fill="#3b2418"/>
    </svg>`,
  );
  const noise = await sharp({ create: { width: 960, height: 640, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 14 } } }).png().toBuffer();
  await sharp(scene).composite([{ input: noise, blend: 'overlay' }]).jpeg({ quality: 90 }).toFile(file);
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'fqtok-console-'));
  const models = path.join(tmp, 'models');
  await mkdir(models);
  await cp(path.join(ROOT, 'models', SHIPPED), path.join(models, SHIPPED), { recursive: true });
  await exportModel(path.join(models, 'tiny-16'), { preset: 'test-16' }); // a smaller base for a quick CPU fine-tune
  await makeDataset(path.join(tmp, 'datasets', 'photos'), 6);
  photo = path.join(tmp, 'photo.jpg');
  await makePhoto(photo);
  await mkdir(ARTIFACTS, { recursive: true });
  server = await startTestServer({
    FQ_MODELS_DIR: models,
    FQ_DEFAULT_MODEL: SHIPPED,
    FQ_DATA_DIR: path.join(tmp, 'data'),
    FQ_DATASETS_DIR: path.join(tmp, 'datasets'),
    FQ_ADMIN_TOKEN: ADMIN_TOKEN,
    FQ_PYTHON: PYTHON,
  });
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close();
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

/** Waits until every <img> matching `selector` has loaded, and returns their natural sizes. */
async function loadedImages(page: Page, selector: string, count: number): Promise<[number, number][]> {
  await page.waitForFunction(
    (sel, n) => {
      const imgs = [...document.querySelectorAll<HTMLImageElement>(sel)];
      return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0);
    },
    {},
    selector,
    count,
  );
  return page.$$eval(selector, (imgs) => (imgs as HTMLImageElement[]).map((i) => [i.naturalWidth, i.naturalHeight] as [number, number]));
}

test('playground: a photo in, its crop, one grid image per codebook, full and partial reconstructions at the model size; then its codes on the models page', async () => {
  const { page, problems } = await openTab(chromium.browser);
  try {
    await page.goto(`${server.url}/`);
    await page.waitForSelector('body[data-ready="true"]');
    const input = (await page.$('#file')) as ElementHandle<HTMLInputElement>;
    await input.uploadFile(photo);
    await page.waitForSelector('body[data-state="done"]');

    const model = (await (await fetch(`${server.url}/models/${SHIPPED}`)).json()) as { image_size: number; grid: [number, number]; codebooks: { name: string }[] };
    assert.deepEqual(await loadedImages(page, '#reconstruction', 1), [[model.image_size, model.image_size]]);
    assert.deepEqual(await loadedImages(page, '#crop', 1), [[model.image_size, model.image_size]]);
    const grids = await loadedImages(page, 'img.grid', model.codebooks.length);
    assert.deepEqual(grids, model.codebooks.map(() => [model.grid[1], model.grid[0]]));
    assert.deepEqual(await page.$$eval('img.grid', (imgs) => imgs.map((i) => (i as HTMLElement).dataset.codebook)), model.codebooks.map((c) => c.name));
    const partials = await loadedImages(page, 'img.partial', 2 ** model.codebooks.length - 2);
    assert.ok(partials.every(([w, h]) => w === model.image_size && h === model.image_size));

    // Hovering a cell names the code the API gives for that cell of this photo.
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(await readFile(photo))], { type: 'image/jpeg' }), 'photo.jpg');
    const encoded = (await (await fetch(`${server.url}/encode`, { method: 'POST', body: form })).json()) as { images: { tokens: Record<string, number[][]> }[] };
    const grid = (await page.$('img.grid[data-codebook="vis"]'))!;
    const box = (await grid.boundingBox())!;
    await page.mouse.move(box.x + (box.width * 2.5) / model.grid[1], box.y + (box.height * 1.5) / model.grid[0]);
    await page.waitForSelector('#tooltip:not([hidden])');
    assert.equal(await page.$eval('#tooltip', (t) => t.textContent), `vis [1, 2]: code ${encoded.images[0]!.tokens.vis![1]![2]}`);
    await shot(page, 'playground');

    // Downloads: the tokens as JSON and as NPZ, the same as /encode answers.
    const downloads = path.join(tmp, 'downloads');
    await mkdir(downloads, { recursive: true });
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#download-json');
    await page.click('#download-npz');
    const npzFile = path.join(downloads, 'photo.jpg.tokens.npz');
    const jsonFile = path.join(downloads, 'photo.jpg.tokens.json');
    await waitFor('both downloads', async () => ((await stat(npzFile).catch(() => undefined))?.size && (await stat(jsonFile).catch(() => undefined))?.size ? true : undefined), 60_000);
    assert.deepEqual((JSON.parse(await readFile(jsonFile, 'utf8')) as typeof encoded).images[0]!.tokens, encoded.images[0]!.tokens);
    const npzForm = new FormData();
    npzForm.append('image', new Blob([new Uint8Array(await readFile(photo))], { type: 'image/jpeg' }), 'photo.jpg');
    npzForm.append('format', 'npz');
    const npzFromApi = Buffer.from(await (await fetch(`${server.url}/encode`, { method: 'POST', body: npzForm })).arrayBuffer());
    assert.ok(npzFromApi.equals(await readFile(npzFile)), 'the NPZ download is what /encode answers');

    await page.select('#augment', 'flip');
    await page.waitForFunction(() => document.querySelectorAll('#views .tile').length === 2 && document.body.dataset.state === 'done');
    await loadedImages(page, '#views img', 4);

    await page.goto(`${server.url}/console/models`);
    await page.waitForSelector('body[data-ready="true"]');
    assert.match(await page.$eval('#usage-recent', (b) => b.textContent ?? ''), /Recent encodes \(3 images\)/); // one centre crop, then two flip views
    await page.click('#usage-recent');
    await page.waitForSelector('#usage-result[data-points]');
    await loadedImages(page, '#usage-result img.histogram', 1);
    assert.ok(Number(await page.$eval('#usage-result', (e) => (e as HTMLElement).dataset.points)) > 1);
    assert.equal(await page.$$eval('#usage-result .usage-summary tbody tr', (rows) => rows.length), model.codebooks.length);
    assert.deepEqual(await page.$$eval('.model-card', (cards) => cards.map((c) => (c as HTMLElement).dataset.model)), [SHIPPED, 'tiny-16']);
    await shot(page, 'models');

    // An uploaded NPZ of codes (the one downloaded above) is counted the same way.
    const npzInput = (await page.$('#usage-npz')) as ElementHandle<HTMLInputElement>;
    await npzInput.uploadFile(npzFile);
    await page.waitForFunction(() => /Codes from photo\.jpg\.tokens\.npz: 1 image/.test(document.querySelector('#usage-result')?.textContent ?? ''));
    await loadedImages(page, '#usage-result img.histogram', 1);
    assert.deepEqual(problems.seen, []);
  } finally {
    await page.close();
  }
});

test('API docs: Swagger UI at /docs shows every operation of /openapi.json, under the strict policy', async () => {
  const { page, problems } = await openTab(chromium.browser);
  try {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, object> };
    const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    await page.goto(`${server.url}/docs`);
    await page.waitForFunction((n) => document.querySelectorAll('.opblock').length === n, {}, operations);
    await shot(page, 'docs');
    assert.deepEqual(problems.seen, []);
  } finally {
    await page.close();
  }
});

test('jobs: a wrong token is an error, then a fine-tune started from the form is watched live to succeeded and served in the playground', async () => {
  const { page, problems } = await openTab(chromium.browser);
  const setField = (name: string, value: string) =>
    page.$eval(`[data-field="${name}"]`, (el, v) => {
      (el as HTMLInputElement).value = v;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, value);
  try {
    await page.goto(`${server.url}/console/jobs`);
    await page.waitForSelector('#token-gate:not([hidden])');
    problems.expect(403, '/jobs');
    await page.type('#token', 'not-the-admin-token-at-all');
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.$eval('#error', (e) => e.textContent ?? ''), /Forbidden \(403\).*not the admin token/);
    assert.equal(await page.$eval('#jobs-ui', (e) => getComputedStyle(e).display), 'none');
    assert.notEqual(await page.$eval('#token-gate', (e) => getComputedStyle(e).display), 'none');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('fqtok.adminToken')), null); // a wrong token is not kept
    await shot(page, 'jobs-wrong-token');

    await page.type('#token', ADMIN_TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#start-job');
    assert.equal(await page.$eval('#error', (e) => getComputedStyle(e).display), 'none');
    assert.equal(await page.$eval('#token-gate', (e) => getComputedStyle(e).display), 'none');
    assert.deepEqual(await page.$$eval('#dataset option', (o) => o.map((x) => x.textContent)), ['photos (6 images)']);
    await page.select('#base_model', 'tiny-16');
    await setField('output_model', 'my-tokenizer');
    const hyperparameters: Record<string, string> = {
      steps: '6', batch_size: '2', lr: '0.001', eval_every: '3', eval_images: '2', checkpoint_every: '3', log_every: '1',
      perceptual_weight: '0', semantic_weight: '0', disc_start: '1000000',
    };
    for (const [name, value] of Object.entries(hyperparameters)) await setField(`hyperparameters.${name}`, value);
    await page.$eval('[data-field="device.device"]', (el) => ((el as HTMLSelectElement).value = 'cpu'));
    await setField('device.num_workers', '0');
    await page.click('#start-job');

    await page.waitForSelector('#job-view[data-job]');
    await page.waitForFunction(() => Number((document.querySelector('#job-view') as HTMLElement).dataset.lossPoints) >= 1, { timeout: 120_000 });
    const early = Number(await page.$eval('#job-view', (e) => (e as HTMLElement).dataset.lossPoints));
    assert.notEqual(await page.$eval('#cancel-job', (e) => getComputedStyle(e).display), 'none', 'a running job can be cancelled');
    await page.waitForFunction(() => ['succeeded', 'failed', 'cancelled'].includes((document.querySelector('#job-view') as HTMLElement).dataset.status ?? ''), { timeout: 240_000 });
    const view = await page.$eval('#job-view', (e) => ({ ...(e as HTMLElement).dataset }));
    assert.equal(view.status, 'succeeded', await page.$eval('#job-view', (e) => e.textContent ?? ''));
    assert.equal(Number(view.lossPoints), 6, 'one loss point per step (log_every 1)');
    assert.ok(early < 6, `the chart gained points while the job ran (first seen with ${early})`);
    await page.waitForFunction(() => (document.querySelector('#job-view') as HTMLElement).dataset.samples === '2');
    assert.equal(Number(view.evalPoints), 2, 'evaluations at steps 3 and 6');
    assert.deepEqual(await loadedImages(page, '#samples img', 1), [[2 * 256 + 3 * 2, 2 * 256 + 3 * 2]]);
    assert.ok((await page.$$eval('#job-view table.list tbody tr', (rows) => rows.length)) >= 1, 'checkpoints listed');
    assert.equal(await page.$eval('#job-list tbody tr[data-job] .badge', (b) => b.textContent), 'succeeded');
    assert.equal(await page.$eval('#cancel-job', (e) => getComputedStyle(e).display), 'none', 'an ended job cannot');
    await shot(page, 'job-live');

    await Promise.all([page.waitForNavigation(), page.click('#result-link')]);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.$eval('#model', (s) => (s as HTMLSelectElement).value), 'my-tokenizer');
    assert.equal(await page.$eval('body', (b) => b.dataset.model), 'my-tokenizer@1');
    assert.deepEqual(problems.seen, []);
  } finally {
    await page.close();
  }
});
