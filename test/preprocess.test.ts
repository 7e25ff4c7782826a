// Preprocessing is reference-exact: fqtok's crops equal, byte for byte, what Pillow and the FQGAN
// reference compute from the same files (fixtures made by Pillow when the test starts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { FqError } from '../src/errors.ts';
import { readImage } from '../src/imaging/read-image.ts';
import { resample } from './helpers/pil-resample.ts';
import { createPreprocessor, cropsToNchw, type Augment, type Orientation } from '../src/imaging/preprocess.ts';
import { centerCropArr, centerCropResizes, cropWindow, roundHalfEven } from '../src/imaging/reference-crop.ts';
import type { RgbImage } from '../src/imaging/rgb-image.ts';
import { PYTHON as python } from './helpers/python.ts';

interface FixtureCase {
  file: string;
  mode: string;
  width: number;
  height: number;
  orientation: Orientation;
  augment: Augment;
  expected: string;
  reference_exact: boolean;
}

interface Manifest {
  pillow: string;
  image_size: number;
  ten_crop_range: number;
  cases: FixtureCase[];
  bad: { file: string; kind: 'bad_image' | 'too_large'; pillow_refuses: boolean | null }[];
}

const fixtures = mkdtempSync(join(tmpdir(), 'fqtok-pil-'));
execFileSync(python, [new URL('./fixtures/make_pil_crops.py', import.meta.url).pathname, fixtures], { stdio: 'inherit' });
const manifest = JSON.parse(readFileSync(join(fixtures, 'manifest.json'), 'utf8')) as Manifest;
const fixture = (name: string) => readFileSync(join(fixtures, name));

const MAX_INPUT_PIXELS = 50_000_000;
const preprocessor = createPreprocessor({ maxInputPixels: MAX_INPUT_PIXELS, threads: 2 });
after(async () => {
  await preprocessor.close();
  rmSync(fixtures, { recursive: true, force: true });
});

/** Equality with a useful message: how many bytes differ, where the first one is, by how much. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} bytes, expected ${expected.length}`);
  let differing = 0;
  let first = -1;
  let largest = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d === 0) continue;
    differing++;
    largest = Math.max(largest, d);
    if (first < 0) first = i;
  }
  assert.equal(differing, 0, `${what}: ${differing} bytes differ (first at byte ${first}, largest difference ${largest})`);
}

describe(`crops equal Pillow ${manifest.pillow} + the FQGAN reference`, () => {
  test('the fixtures span the sizes, modes, formats and views the issue lists', () => {
    const modes = new Set(manifest.cases.map((c) => c.mode));
    for (const mode of ['RGB', 'L', 'P', 'RGBA', 'LA', 'CMYK', '1']) assert.ok(modes.has(mode), `no ${mode} fixture`);
    const files = manifest.cases.map((c) => c.file);
    for (const size of ['1x1', '7x3', '255x256', '256x256', '511x600', '512x512', '513x700', '1024x768', '3000x200', '200x3000', '2x2', '1x100', '100x1', '256x300', '2050x1030', '4000x3000']) {
      assert.ok(files.some((f) => f.includes(`_${size}.`)), `no ${size} fixture`);
    }
    for (const kind of ['progressive', '_420_', '_444_', 'q50', 'q75', 'q95', 'exif6', 'Ptrns', 'icc']) {
      assert.ok(files.some((f) => f.includes(kind)), `no ${kind} fixture`);
    }
    const augments = new Set(manifest.cases.map((c) => c.augment));
    assert.deepEqual([...augments].sort(), ['flip', 'none', 'ten_crop']);
  });

  for (const c of manifest.cases) {
    const label = `${c.file} (${c.mode} ${c.width}x${c.height}) orientation=${c.orientation} augment=${c.augment}`;
    test(c.reference_exact ? label : `${label}, fqtok's documented deviation`, async () => {
      const crops = await preprocessor.preprocess(fixture(c.file), { imageSize: 256, orientation: c.orientation, augment: c.augment });
      const views = { none: 1, flip: 2, ten_crop: 10 }[c.augment];
      assert.equal(crops.length, views);
      for (const crop of crops) assert.equal(crop.length, manifest.image_size * manifest.image_size * 3);
      assertSameBytes(Buffer.concat(crops), fixture(c.expected), label);
    });
  }
});

describe('orientation', () => {
  test("defaults to 'ignore', the reference's behaviour", async () => {
    const [crop] = await preprocessor.preprocess(fixture('exif6_640x480.jpg'), { imageSize: 256 });
    assertSameBytes(crop!, fixture('exif6_640x480.jpg.ignore.none.rgb'), 'default orientation');
  });

  test("'exif' turns the image upright as Pillow's exif_transpose does, and differs from 'ignore'", async () => {
    const input = fixture('exif6_640x480.jpg');
    const [upright] = await preprocessor.preprocess(input, { imageSize: 256, orientation: 'exif' });
    const [asStored] = await preprocessor.preprocess(input, { imageSize: 256, orientation: 'ignore' });
    assertSameBytes(upright!, fixture('exif6_640x480.jpg.exif.none.rgb'), "orientation 'exif'");
    assert.notDeepEqual(upright, asStored, "fqtok's two modes give different crops of an EXIF-rotated photo");
  });
});

describe('decoding', () => {
  test('embedded ICC profiles are ignored, as Pillow does (and this profile would change the pixels)', async () => {
    const input = fixture('icc_640x480.jpg');
    const ours = await readImage(input, { orientation: 'ignore', maxInputPixels: MAX_INPUT_PIXELS });
    const managed = await sharp(input).toColourspace('srgb').raw().toBuffer();
    assert.notDeepEqual(Buffer.from(ours.data), managed);
  });

  test("the caller's buffer is left intact (copied into the worker, not moved)", async () => {
    const input = fixture('q85_444_255x256.jpg');
    const before = Buffer.from(input);
    await preprocessor.preprocess(input, { imageSize: 256 });
    await preprocessor.preprocess(input, { imageSize: 256 });
    assert.deepEqual(input, before);
  });

  test('an image exactly at the pixel limit is accepted, one pixel more is not', async () => {
    const input = fixture('rgb_513x700.png');
    const limit = 513 * 700;
    const options = { orientation: 'ignore', maxInputPixels: limit } as const;
    assert.equal((await readImage(input, options)).width, 513);
    await assert.rejects(readImage(input, { ...options, maxInputPixels: limit - 1 }), { name: 'FqError', kind: 'too_large' });
  });
});

describe('refusals', () => {
  for (const bad of manifest.bad) {
    test(`${bad.file} -> ${bad.kind}`, async () => {
      if (bad.kind === 'bad_image') assert.equal(bad.pillow_refuses, true, 'Pillow accepts this file, so fqtok should too');
      const started = performance.now();
      await assert.rejects(preprocessor.preprocess(fixture(bad.file), { imageSize: 256, item: 4 }), (err: unknown) => {
        assert.ok(err instanceof FqError, `not an FqError: ${String(err)}`);
        assert.equal(err.kind, bad.kind, err.message);
        assert.equal(err.item, 4);
        return true;
      });
      // Refused from the header: a 400-megapixel decode would take seconds and 400 MB.
      if (bad.kind === 'too_large') assert.ok(performance.now() - started < 2000);
    });
  }

  test('a closed preprocessor answers unavailable', async () => {
    const closing = createPreprocessor({ maxInputPixels: MAX_INPUT_PIXELS, threads: 1 });
    await closing.close();
    await assert.rejects(closing.preprocess(fixture('rgb_7x3.png'), { imageSize: 256 }), { name: 'FqError', kind: 'unavailable' });
  });

  test('the pool keeps working after refusals', async () => {
    const crops = await preprocessor.preprocess(fixture('rgb_7x3.png'), { imageSize: 256 });
    assertSameBytes(crops[0]!, fixture('rgb_7x3.png.ignore.none.rgb'), 'after refusals');
  });
});

describe('reference-crop building blocks', () => {
  test("roundHalfEven is Python's round", () => {
    const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [255.49999999999997, 255], [256.5, 256], [341.3333, 341], [2.5000001, 3]];
    for (const [x, expected] of cases) assert.equal(roundHalfEven(x), expected, `round(${x})`);
  });

  test('the resizes center_crop_arr performs', () => {
    const sizes = (w: number, h: number) => centerCropResizes(w, h, 256).map((s) => `${s.filter}:${s.outWidth}x${s.outHeight}`);
    assert.deepEqual(sizes(4000, 3000), ['box:2000x1500', 'box:1000x750', 'box:500x375', 'bicubic:341x256']);
    assert.deepEqual(sizes(512, 513), ['box:256x256', 'bicubic:256x256']);
    assert.deepEqual(sizes(511, 600), ['bicubic:256x301']);
    assert.deepEqual(sizes(7, 3), ['bicubic:597x256']);
  });

  test('computing only the cropped region gives the bytes of the full resizes', () => {
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const sizes = [[300, 900], [1029, 515], [1100, 1031], [2049, 530], [520, 257], [256, 256], [19, 601], [600, 5]];
    for (const [width, height] of sizes as [number, number][]) {
      const data = new Uint8Array(width * height * 3);
      for (let i = 0; i < data.length; i++) data[i] = random() >>> 24;
      const image: RgbImage = { data, width, height };
      let full = image;
      for (const step of centerCropResizes(width, height, 256)) full = resample(full, step.outWidth, step.outHeight, step.filter);
      const expected = cropWindow(full, (full.width - 256) >> 1, (full.height - 256) >> 1, 256, 256);
      assertSameBytes(centerCropArr(image, 256), expected, `${width}x${height}`);
    }
  });
});

describe('cropsToNchw', () => {
  test("matches torchvision's ToTensor + Normalize(0.5, 0.5) in float32, and lays out NCHW", () => {
    const table = new Float32Array(
      JSON.parse(
        execFileSync(python, ['-c', 'import numpy as n; v = n.arange(256, dtype=n.float32); print(((v / n.float32(255) - n.float32(0.5)) / n.float32(0.5)).tolist())'], {
          encoding: 'utf8',
        }),
      ) as number[],
    );
    const size = 16; // 256 pixels: pixel i holds (i, 255 - i, i ^ 85)
    const crop = new Uint8Array(size * size * 3);
    for (let i = 0; i < size * size; i++) crop.set([i, 255 - i, i ^ 85], i * 3);
    const tensor = cropsToNchw([crop, crop], size);
    assert.equal(tensor.length, 2 * 3 * size * size);
    const plane = size * size;
    for (let i = 0; i < plane; i++) {
      assert.equal(tensor[i], table[i]);
      assert.equal(tensor[plane + i], table[255 - i]);
      assert.equal(tensor[2 * plane + i], table[i ^ 85]);
      assert.equal(tensor[3 * plane + i], table[i]);
    }
  });
});
