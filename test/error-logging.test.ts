// Every 5xx is logged once at error level with its request id and cause chain (log lines of a real server process).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { exportModel } from './helpers/export-model.ts';
import { makeImage } from './helpers/images.ts';
import { ROOT } from './helpers/paths.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';

const ERROR = 50; // pino's level number for error
let work: string;
let png: Buffer;
const servers: ServerProcess[] = [];

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'fqtok-logs-'));
  // A model whose manifest disagrees with its ONNX graph (a hand-edited image_size): every encode fails in onnxruntime.
  const broken = path.join(work, 'models', 'broken');
  await exportModel(broken, { preset: 'test-16', imageSize: 128 });
  const manifest = JSON.parse(readFileSync(path.join(broken, 'manifest.json'), 'utf8')) as { image_size: number };
  manifest.image_size = 64;
  writeFileSync(path.join(broken, 'manifest.json'), JSON.stringify(manifest));
  png = await makeImage(256, 256);
}, { timeout: 180_000 });

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(work, { recursive: true, force: true });
});

async function post(server: ServerProcess, body: Uint8Array<ArrayBuffer>): Promise<{ status: number; requestId: string }> {
  const res = await fetch(`${server.url}/encode`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
  const problem = (await res.json()) as { request_id: string };
  return { status: res.status, requestId: problem.request_id };
}

function linesOf(server: ServerProcess, requestId: string) {
  return server.logs().filter((l) => l.requestId === requestId);
}

/**
 * The server's lines about one request, once any has arrived. pino writes synchronously before the
 * answer goes out, so every line of the request is in the pipe by then; only our reading may lag.
 */
async function logged(server: ServerProcess, requestId: string) {
  await server.waitForLog(`a log line with requestId ${requestId}`, (l) => l.requestId === requestId, 10_000);
  return linesOf(server, requestId);
}

test('a 500 from the inference backend: one error line with the request id and the cause chain down to onnxruntime', async () => {
  const server = await startServerProcess({ FQ_MODELS_DIR: path.join(work, 'models'), FQ_DATA_DIR: path.join(work, 'data1') });
  servers.push(server);
  const { status, requestId } = await post(server, new Uint8Array(png));
  assert.equal(status, 500);
  const lines = await logged(server, requestId);
  const errors = lines.filter((l) => (l.level as number) >= ERROR);
  assert.equal(errors.length, 1, JSON.stringify(lines));
  const causes = errors[0]!.causes as string[];
  assert.match(causes[0]!, /model broken@1: the encode run of 1 images failed/);
  assert.ok(causes.length >= 2, `the cause chain reaches the backend's error: ${JSON.stringify(causes)}`);
  assert.match(causes.slice(1).join(' '), /dimension|shape|image/i);
  assert.equal(errors[0]!.status, 500);
  // A refusal (4xx) is not an error: one info line.
  const refused = await post(server, new Uint8Array(Buffer.from('not an image')));
  assert.equal(refused.status, 422);
  assert.deepEqual((await logged(server, refused.requestId)).map((l) => l.level), [30]);
});

test('a 504 (the request timed out) is logged once at error level with its request id', async () => {
  const server = await startServerProcess({
    FQ_MODELS_DIR: path.join(ROOT, 'models'),
    FQ_DATA_DIR: path.join(work, 'data2'),
    FQ_REQUEST_TIMEOUT_MS: '1',
  });
  servers.push(server);
  const { status, requestId } = await post(server, new Uint8Array(png));
  assert.equal(status, 504);
  const lines = await logged(server, requestId);
  const errors = lines.filter((l) => (l.level as number) >= ERROR);
  assert.equal(errors.length, 1, JSON.stringify(lines));
  assert.match(errors[0]!.detail as string, /not processed within 1 ms/);
});
