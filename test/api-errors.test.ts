// Bad input over HTTP: every case gets a 4xx problem+json naming the problem, and the server keeps serving.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { deflateSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { writeNpz } from '../src/formats/npz.ts';
import { makeImage } from './helpers/images.ts';
import { ResponseValidator } from './helpers/openapi.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { waitFor } from './helpers/wait.ts';

let server: TestServer;
let validator: ResponseValidator;
let goodPng: Buffer;
let encoded: { images: { tokens: Record<string, number[][]> }[] };

function form(...parts: { bytes: Uint8Array; name?: string }[]): FormData {
  const f = new FormData();
  parts.forEach((p, i) => f.append('image', new Blob([new Uint8Array(p.bytes)]), p.name ?? `f${i}`));
  return f;
}

/** A PNG header claiming `side` x `side` pixels with a tiny compressed body: a decompression bomb. */
function pngBomb(side: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = deflateSync(Buffer.alloc((side + 1) * 64)); // only the first rows; the rest is never needed
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', rows), chunk('IEND', Buffer.alloc(0))]);
}

/** POST with node:http, which reads an early answer (413) even when the server stops reading the body. */
function rawPost(url: string, body: Uint8Array, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: res.headers as Record<string, string> })));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    req.end(body);
  });
}

async function expectProblem(route: string, path: string, init: RequestInit, status: number, detail: RegExp): Promise<void> {
  const res =
    init.body instanceof Uint8Array && init.body.length > 1024 * 1024
      ? await rawPost(server.url + path, init.body, init.headers as Record<string, string>)
      : await fetch(server.url + path, { method: 'POST', ...init });
  await validator.check('POST', route, res);
  const body = (await res.json()) as { status: number; detail: string; type: string };
  assert.equal(res.status, status, `${path}: ${body.detail}`);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal(body.status, status);
  assert.match(body.detail, detail);
  // ...and the server still serves a good request.
  const ok = await fetch(`${server.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }) });
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();
}

const json = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

before(async () => {
  server = await startTestServer({ FQ_MAX_IMAGES: '4', FQ_MAX_BODY_BYTES: String(3 * 1024 * 1024), FQ_MAX_INPUT_PIXELS: String(40_000_000) });
  validator = new ResponseValidator(server.app);
  goodPng = await makeImage(256, 256);
  encoded = (await (await fetch(`${server.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }) })).json()) as typeof encoded;
});
after(() => server.close());

describe('bad images and bodies for /encode', () => {
  test('undecodable, truncated and empty images name the offending item', async () => {
    await expectProblem('/encode', '/encode', { body: form({ bytes: goodPng }, { bytes: Buffer.from('definitely not an image'), name: 'notes.png' }) }, 422, /image 1 \(notes\.png\)/);
    await expectProblem('/encode', '/encode', { body: form({ bytes: goodPng.subarray(0, goodPng.length / 2) }) }, 422, /image 0/);
    const jpeg = await makeImage(300, 300, 'jpeg');
    await expectProblem('/encode', '/encode', { body: form({ bytes: jpeg.subarray(0, 400) }) }, 422, /image 0/);
    await expectProblem('/encode', '/encode', { body: new Uint8Array(0), headers: { 'content-type': 'image/png' } }, 422, /image 0/);
  });

  test('decompression bombs, too many images and oversized bodies are refused with 413', async () => {
    await expectProblem('/encode', '/encode', { body: new Uint8Array(pngBomb(30000)), headers: { 'content-type': 'image/png' } }, 413, /pixel/i);
    // Few pixels, but the crop would upscale this strip to 256 x 5,120,000 first (the reference would too).
    const strip = await makeImage(1, 20000);
    await expectProblem('/encode', '/encode', { body: new Uint8Array(strip), headers: { 'content-type': 'image/png' } }, 413, /1x20000: too elongated/);
    const five = Array.from({ length: 5 }, () => ({ bytes: goodPng }));
    await expectProblem('/encode', '/encode', { body: form(...five) }, 413, /at most 4|more than 4/);
    await expectProblem('/encode', '/encode', { body: new Uint8Array(4 * 1024 * 1024), headers: { 'content-type': 'image/png' } }, 413, /larger than/);
  });

  test('unsupported content types, malformed JSON and base64, bad options, unknown model', async () => {
    await expectProblem('/encode', '/encode', { body: 'hello', headers: { 'content-type': 'text/plain' } }, 415, /text\/plain/);
    await expectProblem('/encode', '/encode', { body: '{"images": [', headers: { 'content-type': 'application/json' } }, 400, /JSON|json/);
    await expectProblem('/encode', '/encode', json({ images: ['***not base64***'] }), 400, /image 0: not valid base64/);
    await expectProblem('/encode', '/encode', json({ images: 'x' }), 400, /images/);
    await expectProblem('/encode', '/encode?augment=rotate', { body: form({ bytes: goodPng }) }, 400, /augment/);
    await expectProblem('/encode', '/encode?codebooks=vis,nope', { body: form({ bytes: goodPng }) }, 400, /nope/);
    await expectProblem('/encode', '/encode?model=missing', { body: form({ bytes: goodPng }) }, 404, /missing/);
  });
});

describe('bad token grids for /decode', () => {
  const tokens = () => structuredClone(encoded.images[0]!.tokens);

  test('missing codebooks, mismatched or wrong shapes', async () => {
    const { vis, sem_mid } = tokens();
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: { vis, sem_mid } }] }), 422, /sem_high/);
    const short = tokens();
    short.vis = short.vis!.slice(1);
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: short }] }), 422, /shape \[1, 15, 16\].*takes 16x16 grids, 256 tokens per image.*\[N, 256\]/);
    const ragged = tokens();
    ragged.vis![3] = ragged.vis![3]!.slice(2);
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: ragged }] }), 422, /rows differ/);
    const small = Object.fromEntries(Object.keys(tokens()).map((k) => [k, [[1, 2], [3, 4]]]));
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: small }] }), 422, /shape \[1, 2, 2\].*16x16/);
  });

  test('flat sequences of the wrong length name the expected 256 and the accepted layouts', async () => {
    const npz = (shape: number[]) => {
      const data = new Int32Array(shape.reduce((a, b) => a * b, 1));
      return { body: writeNpz({ vis: { shape, data }, sem_mid: { shape, data }, sem_high: { shape, data } }) as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/x-npz' } };
    };
    for (const shape of [[2, 255], [1, 2, 257], [255]]) {
      await expectProblem('/decode', '/decode', npz(shape), 422, new RegExp(`\\[${shape.join(', ')}\\].*256 tokens per image.*\\[N, views, 256\\], \\[N, 256\\] or \\[256\\]`));
    }
    const row = (n: number) => Array.from({ length: n }, () => 0);
    await expectProblem('/decode', '/decode', json({ tokens: { vis: [row(255)], sem_mid: [row(255)], sem_high: [row(255)] } }), 422, /\[1, 255\].*256 tokens/);
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: { vis: row(100), sem_mid: row(100), sem_high: row(100) } }] }), 422, /\[1, 100\].*256 tokens/);
    const two = { shape: [2, 256], data: new Int32Array(512) };
    const three = { shape: [3, 256], data: new Int32Array(768) };
    await expectProblem('/decode', '/decode', { body: writeNpz({ vis: two, sem_mid: three, sem_high: two }) as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/x-npz' } }, 422, /'sem_mid' holds 3 grids/);
    await expectProblem('/decode', '/decode', json({ tokens: { vis: [row(256)] }, images: encoded.images }), 422, /either `images`.*or `tokens`/);
    await expectProblem('/decode', '/decode?format=npz', json({ tokens: { vis: [row(256)], sem_mid: [row(256)], sem_high: [[...row(255), 1e9]] } }), 422, /sem_high.*outside/);
  });

  test('non-integer, negative and out-of-range tokens name the position', async () => {
    const frac = tokens();
    frac.sem_mid![2]![5] = 1.5;
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: frac }] }), 422, /sem_mid.*row 2, column 5.*not an integer/);
    const neg = tokens();
    neg.vis![0]![0] = -1;
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: neg }] }), 422, /outside/);
    const big = tokens();
    big.sem_high![1]![1] = 1e9;
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: tokens() }, { tokens: big }] }), 422, /grid 1, row 1, column 1/);
    await expectProblem('/decode', '/decode', json({ images: [{ tokens: { ...tokens(), vis: 'x' } }] }), 422, /tokens/);
  });

  test('garbage or float NPZ, empty lists, unsupported content type', async () => {
    await expectProblem('/decode', '/decode', { body: 'PK-not-a-zip', headers: { 'content-type': 'application/x-npz' } }, 422, /npz/i);
    const floatNpy = Buffer.concat([
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]),
      Buffer.from(`{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }`.padEnd(117) + '\n'),
      Buffer.alloc(4),
    ]);
    const { zipSync } = await import('fflate');
    await expectProblem('/decode', '/decode', { body: zipSync({ 'vis.npy': floatNpy }), headers: { 'content-type': 'application/x-npz' } }, 422, /integers/);
    const wrongShape = writeNpz({ vis: { shape: [4], data: new Int32Array(4) } });
    await expectProblem('/decode', '/decode', { body: wrongShape as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/x-npz' } }, 422, /shape/);
    await expectProblem('/decode', '/decode', json({ images: [] }), 400, /images/);
    await expectProblem('/decode', '/decode', { body: 'x', headers: { 'content-type': 'text/csv' } }, 415, /text\/csv/);
  });
});

/** Sum of a metric's samples from GET /metrics, over the label sets that contain `labels`. */
async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sample = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`);
  return text.split('\n').reduce((sum, line) => {
    const m = sample.exec(line);
    return m && (m[1] ?? '').includes(labels) ? sum + Number(m[2]) : sum;
  }, 0);
}

const until = (what: string, check: () => Promise<boolean>) => waitFor(what, check, 20_000, 10);

describe('overload and timeouts', () => {
  test('start-up refuses limits that could never serve a request: a queue smaller than FQ_MAX_IMAGES, a decode budget under one image', async () => {
    await assert.rejects(startTestServer({ FQ_MAX_QUEUE: '8', FQ_MAX_IMAGES: '16' }), /FQ_MAX_QUEUE \(8\) is smaller than FQ_MAX_IMAGES \(16\)/);
    await assert.rejects(
      startTestServer({ FQ_MAX_INPUT_PIXELS: '1000000', FQ_MAX_DECODE_PIXELS_IN_FLIGHT: '999999' }),
      /FQ_MAX_DECODE_PIXELS_IN_FLIGHT \(999999\) is smaller than FQ_MAX_INPUT_PIXELS \(1000000\)/,
    );
  });

  test('a request that can never fit the queue (views > FQ_MAX_QUEUE) is a 413 that says why, and nothing runs for it', async () => {
    const small = await startTestServer({ FQ_MAX_QUEUE: '16', FQ_MAX_IMAGES: '4', FQ_MAX_BATCH: '8', FQ_BATCH_WAIT_MS: '0' });
    try {
      const decoded = await metric(small.url, 'fqtok_images_decoded_total');
      const batches = await metric(small.url, 'fqtok_batch_size_count', 'operation="encode"');
      const res = await fetch(`${small.url}/encode?augment=ten_crop`, { method: 'POST', body: form({ bytes: goodPng }, { bytes: goodPng }) });
      await validator.check('POST', '/encode', res);
      const body = (await res.json()) as { detail: string };
      assert.equal(res.status, 413, body.detail);
      assert.match(body.detail, /20 views \(2 images x 10 for augment=ten_crop\).*at most 16 \(FQ_MAX_QUEUE\).*at most 1 images per request with augment=ten_crop/);
      assert.equal(await metric(small.url, 'fqtok_images_decoded_total'), decoded, 'no image of the refused request was decoded');
      assert.equal(await metric(small.url, 'fqtok_batch_size_count', 'operation="encode"'), batches, 'no batch ran for it');
      // The same images without ten_crop fit, and are served.
      const ok = await fetch(`${small.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }, { bytes: goodPng }) });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    } finally {
      await small.close();
    }
  });

  test('a full queue answers 503 with Retry-After and a true detail, before decoding anything of the refused request', async () => {
    // A batch of 4 runs only when 4 images wait (the batch wait is a minute), so request A stays admitted
    // until request C completes the batch: no timing involved.
    const busy = await startTestServer({ FQ_MAX_BATCH: '4', FQ_MAX_QUEUE: '4', FQ_MAX_IMAGES: '4', FQ_BATCH_WAIT_MS: '60000' });
    try {
      const decoded = await metric(busy.url, 'fqtok_images_decoded_total');
      const a = fetch(`${busy.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }, { bytes: goodPng }, { bytes: goodPng }) });
      await until('request A is admitted and decoding', async () => (await metric(busy.url, 'fqtok_images_decoded_total')) > decoded);
      const refused = await fetch(`${busy.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }, { bytes: goodPng }) });
      await validator.check('POST', '/encode', refused);
      const body = (await refused.json()) as { detail: string };
      assert.equal(refused.status, 503, body.detail);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      const held = /cannot take 2 more images now: (\d+) waiting to run and (\d+) being prepared, of at most 4/.exec(body.detail);
      assert.ok(held, body.detail);
      assert.equal(Number(held[1]) + Number(held[2]), 3, 'the detail counts the 3 images of request A');
      const c = await fetch(`${busy.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }) });
      assert.equal(c.status, 200);
      assert.equal((await a).status, 200);
      await c.arrayBuffer();
      assert.equal(await metric(busy.url, 'fqtok_images_decoded_total'), decoded + 4, 'only A and C were decoded');
    } finally {
      await busy.close();
    }
  });

  test('with no room for even one view, a request is refused before its body is read or parsed', async () => {
    // Batches of 8 never fill a queue of 4, so request A's 4 images wait there for the batch wait (15 s,
    // ample for the two requests below) and hold it full; then they run and A is served.
    const full = await startTestServer({ FQ_MAX_BATCH: '8', FQ_MAX_QUEUE: '4', FQ_MAX_IMAGES: '4', FQ_BATCH_WAIT_MS: '15000' });
    let a: Promise<Response> | undefined;
    try {
      a = fetch(`${full.url}/encode`, { method: 'POST', body: form(...Array.from({ length: 4 }, () => ({ bytes: goodPng }))) });
      await until('request A fills the queue', async () => (await metric(full.url, 'fqtok_queue_depth', 'operation="encode"')) === 4);
      // A body that would be a 400 if it were parsed: the 503 shows it was not.
      const garbled = await fetch(`${full.url}/encode`, {
        method: 'POST',
        body: 'not a form at all',
        headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      });
      const body = (await garbled.json()) as { detail: string };
      assert.equal(garbled.status, 503, body.detail);
      assert.ok(Number(garbled.headers.get('retry-after')) >= 1);
      assert.match(body.detail, /cannot take 1 more views now: 4 waiting to run/);
      const raw = await fetch(`${full.url}/encode`, { method: 'POST', body: goodPng as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'image/png' } });
      assert.equal(raw.status, 503);
      await raw.arrayBuffer();
      assert.equal((await a).status, 200);
    } finally {
      await a?.catch(() => undefined);
      await full.close();
    }
  });

  test('preprocessing honours the timeout (504) and the client leaving: what has not started is never decoded', async () => {
    const big = await makeImage(1600, 1200, 'png');
    const slow = await startTestServer({ FQ_REQUEST_TIMEOUT_MS: '1', FQ_PREPROCESS_THREADS: '1' });
    try {
      const decoded = await metric(slow.url, 'fqtok_images_decoded_total');
      const res = await fetch(`${slow.url}/encode`, { method: 'POST', body: form(...Array.from({ length: 4 }, () => ({ bytes: big }))) });
      assert.equal(res.status, 504);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      await res.arrayBuffer();
      await until('nothing is decoding', async () => (await metric(slow.url, 'fqtok_decoded_pixels_in_flight')) === 0);
      // One decode may have started within the first millisecond; the other three never do.
      assert.ok((await metric(slow.url, 'fqtok_images_decoded_total')) - decoded <= 1);
    } finally {
      await slow.close();
    }
    const one = await startTestServer({ FQ_PREPROCESS_THREADS: '1', FQ_MAX_IMAGES: '8' });
    try {
      const decoded = await metric(one.url, 'fqtok_images_decoded_total');
      const client = new AbortController();
      const leaving = fetch(`${one.url}/encode`, { method: 'POST', body: form(...Array.from({ length: 8 }, () => ({ bytes: big }))), signal: client.signal });
      await until('the first image is decoding', async () => (await metric(one.url, 'fqtok_images_decoded_total')) > decoded);
      const startedBeforeAbort = (await metric(one.url, 'fqtok_images_decoded_total')) - decoded;
      client.abort();
      await assert.rejects(leaving);
      await until('nothing is decoding', async () => (await metric(one.url, 'fqtok_decoded_pixels_in_flight')) === 0);
      // One thread: the decode running when the client left finishes (and, were the abort slow to
      // arrive, one more); none of the rest starts.
      const started = (await metric(one.url, 'fqtok_images_decoded_total')) - decoded;
      assert.ok(started <= startedBeforeAbort + 2 && started < 8, `${started} of 8 images decoded after the client left`);
      const ok = await fetch(`${one.url}/encode`, { method: 'POST', body: form({ bytes: goodPng }) });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    } finally {
      await one.close();
    }
  });

  test('decoded pixels in flight stay within FQ_MAX_DECODE_PIXELS_IN_FLIGHT: images wait their turn though a thread is free', async () => {
    const pixels = 4000 * 3000;
    const large = await startTestServer({
      FQ_PREPROCESS_THREADS: '2',
      FQ_MAX_INPUT_PIXELS: String(pixels),
      FQ_MAX_DECODE_PIXELS_IN_FLIGHT: String(pixels),
    });
    try {
      const photo = await makeImage(4000, 3000, 'jpeg');
      const request = fetch(`${large.url}/encode`, { method: 'POST', body: form({ bytes: photo }, { bytes: photo }, { bytes: photo }) });
      let seen = { inFlight: 0, waiting: 0 };
      await until('one image decodes while another waits for budget', async () => {
        const text = await (await fetch(`${large.url}/metrics`)).text();
        const inFlight = Number(/^fqtok_decoded_pixels_in_flight (\S+)$/m.exec(text)?.[1]);
        const waiting = Number(/^fqtok_decode_waiting (\S+)$/m.exec(text)?.[1]);
        assert.ok(!(inFlight > pixels), `${inFlight} pixels in flight, over the budget of ${pixels}`);
        seen = { inFlight, waiting };
        return inFlight === pixels && waiting >= 1;
      });
      assert.deepEqual(seen, { inFlight: pixels, waiting: seen.waiting });
      const res = await request;
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { images: unknown[] }).images.length, 3);
    } finally {
      await large.close();
    }
  });
});
