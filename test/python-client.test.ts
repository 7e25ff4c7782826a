// The README's Python client (urllib + numpy) round-trips an image against a live server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { makeImage } from './helpers/images.ts';
import { ROOT, startTestServer, type TestServer } from './helpers/server.ts';

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.close());

test('examples/client.py encodes to NPZ with numpy and decodes back to a PNG', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-client-'));
  writeFileSync(path.join(dir, 'in.jpg'), await makeImage(333, 250, 'jpeg'));
  const { stdout } = await promisify(execFile)(process.env.FQ_PYTHON ?? '/usr/bin/python3', [
    path.join(ROOT, 'examples/client.py'),
    server.url,
    path.join(dir, 'in.jpg'),
    path.join(dir, 'out.png'),
  ]);
  const shapes = JSON.parse(stdout) as Record<string, number[]>;
  assert.deepEqual(Object.keys(shapes).sort(), ['sem_high', 'sem_mid', 'vis']);
  assert.deepEqual(shapes.vis!.slice(0, 2), [1, 1]);
  const meta = await sharp(path.join(dir, 'out.png')).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 256, 256]);
});
