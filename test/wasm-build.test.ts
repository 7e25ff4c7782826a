// The committed WebAssembly resampler is what its AssemblyScript source compiles to (npm run build:wasm), and it survives large crops.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WASM_URL } from '../src/imaging/pil-resample-passes.ts';
import { centerCropArr } from '../src/imaging/reference-crop.ts';

const root = new URL('..', import.meta.url).pathname;

test('src/imaging/pil-resample.wasm is a fresh build of assembly/pil-resample.ts (run npm run build:wasm)', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  // The package script's own arguments, with the output sent elsewhere: the test checks the same build.
  const [command, ...args] = pkg.scripts['build:wasm']!.split(/\s+/);
  assert.equal(command, 'asc');
  const outIndex = args.indexOf('--outFile') + 1;
  assert.ok(outIndex > 0 && args[outIndex] === 'src/imaging/pil-resample.wasm', 'build:wasm writes the file the service loads');
  const dir = mkdtempSync(join(tmpdir(), 'fqtok-wasm-'));
  try {
    args[outIndex] = join(dir, 'pil-resample.wasm');
    execFileSync(join(root, 'node_modules/.bin/asc'), args, { cwd: root, stdio: 'pipe', timeout: 120_000 });
    const fresh = readFileSync(args[outIndex]!);
    const committed = readFileSync(WASM_URL);
    assert.ok(fresh.equals(committed), `committed .wasm (${committed.length} bytes) differs from a fresh build (${fresh.length} bytes)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a crop that outgrows the memory kept between crops is right, and so are the crops after it', () => {
  const image = (width: number, height: number) => {
    const data = new Uint8Array(width * height * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    return { data, width, height };
  };
  const small = image(640, 480);
  const before = centerCropArr(small);
  // 5000 x 4000 x 3 bytes alone is over the 64 MiB a thread keeps; the instance is replaced after it.
  const large = image(5000, 4000);
  const largeCrop = centerCropArr(large);
  assert.deepEqual(centerCropArr(large), largeCrop);
  assert.deepEqual(centerCropArr(small), before);
});
