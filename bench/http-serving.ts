// Benchmark of the HTTP service against the bare onnxruntime session, in one run. Prints one JSON object.
//
//   node --import tsx bench/http-serving.ts [--models-dir models] [--model NAME] [--requests 1000] [--concurrency 8] [--warmup 200] [--seconds 120]
//
// - encode: 512x512 JPEG requests over HTTP at concurrency 8 vs the bare encoder session fed ready
//   [maxBatch,3,256,256] tensors (images/s; target ratio >= 0.9);
// - decode: token grids in, PNG out, at concurrency 8 vs the bare decoder session (target >= 0.85);
// - p50/p99 latency at concurrency 1 and 8; the server's event-loop delay p99 under load (from its
//   /metrics, which resets the histogram at every scrape; target < 50 ms);
// - the server's RSS after the first (warm-up) 200 and after all (~2,600) requests (target: within 10%).
// The server runs in a child process so that the load generator does not share its event loop.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { startServerProcess } from '../test/helpers/server-process.ts';
import { readManifest } from '../src/backends/manifest.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    'models-dir': { type: 'string', default: path.join(ROOT, 'models') },
    model: { type: 'string', default: 'fqgan-triple-vq16-tiny' },
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '8' },
    'max-batch': { type: 'string', default: '8' },
    seconds: { type: 'string', default: '120' },
    warmup: { type: 'string', default: '200' },
  },
});
const modelDir = path.join(values['models-dir'], values.model);
const maxBatch = Number(values['max-batch']);
const concurrency = Number(values.concurrency);
const seconds = Number(values.seconds);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `total` requests with `workers` in flight (or until `seconds` pass); returns latencies (ms) and elapsed s. */
async function load(workers: number, total: number, send: () => Promise<void>) {
  const latencies: number[] = [];
  let issued = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (issued < total && performance.now() < deadline) {
        issued++;
        const t = performance.now();
        await send();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, per_s: latencies.length / elapsed, p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99) };
}

async function bareThroughput(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, batch: number): Promise<number> {
  await session.run(feeds); // warm-up
  let images = 0;
  const started = performance.now();
  while (performance.now() - started < 10_000) {
    await session.run(feeds);
    images += batch;
  }
  return images / ((performance.now() - started) / 1000);
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return Number(match?.[1]);
}

const manifest = await readManifest(modelDir);
const [gh, gw] = manifest.grid;

// Bare sessions first, alone on the machine.
const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
const encoder = await ort.InferenceSession.create(path.join(modelDir, manifest.encoder.file), options);
const decoder = await ort.InferenceSession.create(path.join(modelDir, manifest.decoder.file), options);
const image = new ort.Tensor('float32', Float32Array.from({ length: maxBatch * 3 * 256 * 256 }, (_, i) => Math.sin(i) * 0.9), [maxBatch, 3, 256, 256]);
const bareEncode = await bareThroughput(encoder, { [manifest.encoder.input]: image }, maxBatch);
const tokenFeeds: Record<string, ort.Tensor> = { [manifest.decoder.mask]: new ort.Tensor('float32', new Float32Array(manifest.codebooks.length).fill(1), [manifest.codebooks.length]) };
for (const cb of manifest.codebooks) {
  tokenFeeds[cb.name] = new ort.Tensor('int64', BigInt64Array.from({ length: maxBatch * gh * gw }, (_, i) => BigInt((i * 7919) % cb.size)), [maxBatch, gh, gw]);
}
const bareDecode = await bareThroughput(decoder, tokenFeeds, maxBatch);
await encoder.release();
await decoder.release();

const jpegs = await Promise.all(
  Array.from({ length: 8 }, (_, k) =>
    sharp({ create: { width: 512, height: 512, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 120 + k, sigma: 40 } } }).jpeg({ quality: 90 }).toBuffer(),
  ),
);
const { child, url } = await startServerProcess(
  { FQ_MODELS_DIR: values['models-dir'], FQ_DEFAULT_MODEL: values.model, FQ_MAX_BATCH: String(maxBatch), FQ_PREPROCESS_THREADS: '0' },
  { keepLog: false },
);
try {
  let n = 0;
  const encodeOnce = async () => {
    const r = await fetch(`${url}/encode?format=npz`, { method: 'POST', body: new Uint8Array(jpegs[n++ % jpegs.length]!), headers: { 'content-type': 'image/jpeg' } });
    if (r.status !== 200) throw new Error(`encode: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  };
  const grids = await (await fetch(`${url}/encode`, { method: 'POST', body: new Uint8Array(jpegs[0]!), headers: { 'content-type': 'image/jpeg' } })).text();
  const decodeOnce = async () => {
    const r = await fetch(`${url}/decode?format=png`, { method: 'POST', body: grids, headers: { 'content-type': 'application/json' } });
    if (r.status !== 200) throw new Error(`decode: ${r.status} ${await r.text()}`);
    await r.arrayBuffer();
  };
  const total = Number(values.requests);
  // The first 200 requests (both operations, concurrency 8) let the allocator arenas reach their working size.
  const warmup = Number(values.warmup);
  await load(concurrency, warmup / 2, encodeOnce);
  await load(concurrency, warmup / 2, decodeOnce);
  const rssAfter200 = await metric(url, 'fqtok_process_resident_memory_bytes');
  await metric(url, 'fqtok_nodejs_eventloop_lag_p99_seconds'); // resets the histogram
  const encode1 = await load(1, 200, encodeOnce);
  const encode8 = await load(concurrency, total, encodeOnce);
  const lagEncode = await metric(url, 'fqtok_nodejs_eventloop_lag_p99_seconds');
  const decode1 = await load(1, 200, decodeOnce);
  const decode8 = await load(concurrency, total, decodeOnce);
  const lagDecode = await metric(url, 'fqtok_nodejs_eventloop_lag_p99_seconds');
  const rssEnd = await metric(url, 'fqtok_process_resident_memory_bytes');
  const served = warmup + encode1.requests + encode8.requests + decode1.requests + decode8.requests;
  console.log(
    JSON.stringify(
      {
        model: values.model,
        max_batch: maxBatch,
        bare_onnxruntime_images_per_s: { encode: bareEncode, decode: bareDecode },
        http: { encode_c1: encode1, encode_c8: encode8, decode_c1: decode1, decode_c8: decode8 },
        ratio_http_to_bare: { encode_c8: encode8.per_s / bareEncode, decode_png_c8: decode8.per_s / bareDecode },
        event_loop_delay_p99_ms: { encode_load: lagEncode * 1000, decode_load: lagDecode * 1000 },
        rss_mb: { after_warmup: rssAfter200 / 2 ** 20, after_all: rssEnd / 2 ** 20, requests_served: served },
        rss_growth_after_warmup: rssEnd / rssAfter200 - 1,
      },
      null,
      2,
    ),
  );
} finally {
  child.kill('SIGTERM');
}
