// Overload benchmark: served throughput under 4x overload vs unloaded, and how fast refusals come. Prints one JSON object.
//
//   node --import tsx bench/overload.ts [--seconds 15] [--overload 4] [--max-queue 16] [--concurrency 2]
//
// For encode (one 512x512 JPEG per request) and decode (one grid set -> PNG):
// - unloaded: `--concurrency` closed-loop clients; its images/s is the capacity R;
// - overload: requests arrive open-loop at `--overload` x R for `--seconds` (none waits for another);
//   served images/s (target >= 0.9 R), and every refusal must be a 503 with Retry-After, answered in
//   < 50 ms at p99;
// - images decoded for refused requests, from the server's own counters (should be 0);
// - refusal times as the client sees them and as the server timed them (its duration histogram).
// The server runs in a child process (FQ_MAX_QUEUE = --max-queue) so the load generator does not share its event loop.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { startServerProcess } from '../test/helpers/server-process.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '15' },
    overload: { type: 'string', default: '4' },
    'max-queue': { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '2' },
  },
});
const seconds = Number(values.seconds);
const overload = Number(values.overload);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Sum of a metric's samples whose labels contain every one of `labels`. */
async function metric(url: string, name: string, ...labels: string[]): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sample = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`);
  return text.split('\n').reduce((sum, line) => {
    const m = sample.exec(line);
    return m && labels.every((l) => (m[1] ?? '').includes(l)) ? sum + Number(m[2]) : sum;
  }, 0);
}

/** Server-side: how many 503s of a route took at most 50 ms, and how many there were (its latency histogram). */
async function refusalsWithin50ms(url: string, route: string): Promise<{ within: number; total: number }> {
  const labels = [`route="${route}"`, 'status="503"'];
  return {
    within: await metric(url, 'fqtok_http_request_duration_seconds_bucket', ...labels, 'le="0.05"'),
    total: await metric(url, 'fqtok_http_request_duration_seconds_count', ...labels),
  };
}

interface Outcome {
  status: number;
  ms: number;
  retryAfter: string | null;
}

/** Closed loop: `workers` clients, each sending its next request when the last one is answered. */
async function closedLoop(workers: number, send: () => Promise<Outcome>) {
  const outcomes: Outcome[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < deadline) outcomes.push(await send());
    }),
  );
  return summarize(outcomes, (performance.now() - started) / 1000);
}

/** Open loop: requests leave at a fixed rate whatever happens to the earlier ones. */
async function openLoop(ratePerS: number, send: () => Promise<Outcome>) {
  const outcomes: Promise<Outcome>[] = [];
  const started = performance.now();
  const interval = 1000 / ratePerS;
  for (let i = 0; performance.now() - started < seconds * 1000; i++) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    outcomes.push(send());
  }
  const done = await Promise.all(outcomes);
  return summarize(done, (performance.now() - started) / 1000);
}

function summarize(outcomes: Outcome[], elapsedS: number) {
  const served = outcomes.filter((o) => o.status === 200);
  const refused = outcomes.filter((o) => o.status !== 200);
  const refusalMs = refused.map((o) => o.ms).sort((a, b) => a - b);
  const servedMs = served.map((o) => o.ms).sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const o of outcomes) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
  return {
    requests: outcomes.length,
    elapsed_s: elapsedS,
    served_per_s: served.length / elapsedS,
    statuses,
    refusals_without_503_and_retry_after: refused.filter((o) => o.status !== 503 || !o.retryAfter).length,
    refusal_ms: { p50: percentile(refusalMs, 50), p99: percentile(refusalMs, 99), max: refusalMs.at(-1) ?? NaN },
    served_ms: { p50: percentile(servedMs, 50), p99: percentile(servedMs, 99) },
  };
}

async function timed(send: () => Promise<Response>): Promise<Outcome> {
  const t = performance.now();
  const res = await send();
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t, retryAfter: res.headers.get('retry-after') };
}

const jpegs = await Promise.all(
  Array.from({ length: 8 }, (_, k) =>
    sharp({ create: { width: 512, height: 512, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 120 + k, sigma: 40 } } }).jpeg({ quality: 90 }).toBuffer(),
  ),
);
const { child, url } = await startServerProcess({ FQ_MAX_QUEUE: values['max-queue'], FQ_MAX_IMAGES: values['max-queue'], FQ_PREPROCESS_THREADS: '0' }, { keepLog: false });
try {
  let n = 0;
  const encodeOnce = () =>
    timed(() => fetch(`${url}/encode?format=npz`, { method: 'POST', body: new Uint8Array(jpegs[n++ % jpegs.length]!), headers: { 'content-type': 'image/jpeg' } }));
  const grids = await (await fetch(`${url}/encode`, { method: 'POST', body: new Uint8Array(jpegs[0]!), headers: { 'content-type': 'image/jpeg' } })).text();
  const decodeOnce = () => timed(() => fetch(`${url}/decode?format=png`, { method: 'POST', body: grids, headers: { 'content-type': 'application/json' } }));

  const results: Record<string, unknown> = {};
  for (const [operation, once] of [['encode', encodeOnce], ['decode', decodeOnce]] as const) {
    await closedLoop(Number(values.concurrency), once); // warm-up: threads started, code optimised
    const unloaded = await closedLoop(Number(values.concurrency), once);
    const decodedBefore = await metric(url, 'fqtok_images_decoded_total');
    const fastBefore = await refusalsWithin50ms(url, `/${operation}`);
    const overloaded = await openLoop(overload * unloaded.served_per_s, once);
    const decodedDuring = (await metric(url, 'fqtok_images_decoded_total')) - decodedBefore;
    const fastAfter = await refusalsWithin50ms(url, `/${operation}`);
    const serverSide = { within: fastAfter.within - fastBefore.within, total: fastAfter.total - fastBefore.total };
    const servedDuring = overloaded.statuses['200'] ?? 0;
    results[operation] = {
      unloaded,
      overloaded: { offered_per_s: overload * unloaded.served_per_s, ...overloaded },
      served_ratio: overloaded.served_per_s / unloaded.served_per_s,
      refusal_p99_under_50ms: overloaded.refusal_ms.p99 < 50 || Number.isNaN(overloaded.refusal_ms.p99),
      // The same, timed inside the server (its request-duration histogram), without the client's side.
      server_side_refusals_within_50ms: `${serverSide.within} of ${serverSide.total}`,
      ...(operation === 'encode' ? { images_decoded_for_refused_requests: decodedDuring - servedDuring } : {}),
    };
  }
  console.log(JSON.stringify({ seconds, overload, max_queue: Number(values['max-queue']), concurrency: Number(values.concurrency), ...results }, null, 2));
} finally {
  child.kill('SIGTERM');
}
