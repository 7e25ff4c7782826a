// FQ_EXECUTION_PROVIDERS=webgpu over HTTP: the WebGPU EP (Dawn over Vulkan; lavapipe in CI, installed by
// .ci/install-vulkan) returns the CPU server's tokens and decodes within a stated tolerance.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { makeImage } from './helpers/images.ts';
import { startTestServer } from './helpers/server.ts';
import { startServerProcess } from './helpers/server-process.ts';

/** Decoded pixels may differ from the CPU server's by this many 8-bit levels (float rounding near .5). */
const MAX_LEVEL_DIFF = 2;
const MEAN_LEVEL_DIFF = 0.05;

const vulkanDriver = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some((dir) => existsSync(dir));
// CI installs lavapipe, so there the test always runs; elsewhere it needs some Vulkan driver.
const skip = process.env.CI === 'true' || vulkanDriver ? false : 'no Vulkan driver installed (run .ci/install-vulkan)';

interface EncodeAnswer {
  images: { name: string; tokens: Record<string, number[][]> }[];
}

async function encode(url: string, images: Buffer[]): Promise<EncodeAnswer> {
  const form = new FormData();
  images.forEach((image, i) => form.append('image', new Blob([new Uint8Array(image)]), `img${i}.png`));
  const res = await fetch(`${url}/encode`, { method: 'POST', body: form });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as EncodeAnswer;
}

async function decode(url: string, encoded: EncodeAnswer): Promise<Buffer[]> {
  const res = await fetch(`${url}/decode`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(encoded) });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { images: { data: string }[] };
  return Promise.all(body.images.map(async (i) => (await sharp(Buffer.from(i.data, 'base64')).raw().toBuffer())));
}

test('webgpu serves /encode with the CPU tokens and /decode within tolerance', { skip, timeout: 600_000 }, async () => {
  // Mesa's Vulkan WSI wants a runtime dir; test machines often have none.
  const runtimeDir = process.env.XDG_RUNTIME_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'fqtok-xdg-'));
  const cpu = await startTestServer();
  let gpu: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    gpu = await startServerProcess({ FQ_EXECUTION_PROVIDERS: 'webgpu', XDG_RUNTIME_DIR: runtimeDir });
    const models = (await (await fetch(`${gpu.url}/models`)).json()) as { models: { execution_provider: string }[] };
    assert.deepEqual(models.models.map((m) => m.execution_provider), ['webgpu'], `WebGPU refused (bookworm's Mesa 22 is; .ci/install-vulkan installs Mesa 25):\n${gpu.log()}`);
    assert.match(await (await fetch(`${gpu.url}/metrics`)).text(), /fqtok_model_info\{model="fqgan-triple-vq16-tiny",version="1",execution_provider="webgpu",requested_execution_provider="webgpu"\} 1/);
    assert.match(gpu.log(), /execution provider agrees with the CPU EP/);

    const images = [await makeImage(256, 256, 'png', 3), await makeImage(320, 240, 'jpeg', 7)];
    const [want, got] = [await encode(cpu.url, images), await encode(gpu.url, images)];
    assert.equal(got.images.length, 2);
    assert.deepEqual(got.images.map((i) => i.tokens), want.images.map((i) => i.tokens));

    const [reference, tested] = [await decode(cpu.url, want), await decode(gpu.url, want)];
    assert.equal(tested.length, 2);
    tested.forEach((pixels, n) => {
      const ref = reference[n]!;
      assert.equal(pixels.length, ref.length);
      let max = 0;
      let sum = 0;
      for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(pixels[i]! - ref[i]!);
        max = Math.max(max, d);
        sum += d;
      }
      assert.ok(max <= MAX_LEVEL_DIFF, `image ${n}: a pixel differs by ${max} levels`);
      assert.ok(sum / ref.length <= MEAN_LEVEL_DIFF, `image ${n}: mean difference ${sum / ref.length} levels`);
    });
  } finally {
    await gpu?.close();
    await cpu.close();
    if (!process.env.XDG_RUNTIME_DIR) rmSync(runtimeDir, { recursive: true, force: true });
  }
});
