// Benchmark of `fqtok encode` over WebDataset shards against a folder of the same images: images/s with 1
// and 2 workers, and the CLI's peak RSS for shards of 100 and 5,000 images. Prints one JSON object.
//
//   node --import tsx bench/bulk-encode.ts [--images 256] [--small 100] [--large 5000] [--model NAME] [--skip-rss]
//
// Images are ImageNet-sized JPEGs (500x375, a pool of 16 distinct ones repeated). The throughput part
// encodes the same --images images from a folder (blocks of images/4) and from 4 shards, once with one
// worker and once with two (`--shard 0/2` and `1/2` at once; images/s is all images over the slower
// worker's time). Each figure includes the CLI's start-up, the same for both inputs. The RSS part
// encodes one shard of --small and one of --large images with one worker; its peak RSS is the kernel's
// high-water mark (VmHWM), polled from /proc until it exits. Shards are read as streams, so peak RSS
// should not grow with the shard.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import tar from 'tar-stream';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '256' },
    small: { type: 'string', default: '100' },
    large: { type: 'string', default: '5000' },
    model: { type: 'string', default: 'fqgan-triple-vq16-tiny' },
    'skip-rss': { type: 'boolean', default: false },
  },
});
const IMAGES = Number(values.images);
const work = mkdtempSync(path.join(tmpdir(), 'fqtok-bench-bulk-'));

async function jpeg(seed: number): Promise<Buffer> {
  const [width, height] = [500, 375];
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      pixels[i] = (x * 255) / width;
      pixels[i + 1] = (y * 255) / height;
      pixels[i + 2] = 128 + 100 * Math.sin((x * y + seed * 997) / 300);
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}
const pool = await Promise.all(Array.from({ length: 16 }, (_, i) => jpeg(i)));
const key = (i: number) => String(i).padStart(9, '0');

/** A shard in img2dataset's layout: key.jpg, key.txt, key.cls per sample, keys from `first`. */
async function writeShard(file: string, first: number, count: number): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, createWriteStream(file));
  for (let i = first; i < first + count; i++) {
    for (const [ext, data] of [['jpg', pool[i % pool.length]!], ['txt', Buffer.from(`image ${i}`)], ['cls', Buffer.from(String(i % 10))]] as const) {
      await new Promise<void>((resolve, reject) => pack.entry({ name: `${key(i)}.${ext}` }, data, (err) => (err ? reject(err) : resolve())));
    }
  }
  pack.finalize();
  await done;
}

function peakRssKiB(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // exited between polls
  }
}

/** One `fqtok encode` process: its JSON line, wall seconds and peak RSS. */
async function encode(args: string[]) {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'encode', ...args, '--model', values.model], {
    cwd: ROOT,
    env: { ...process.env, FQ_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakRssKiB(child.pid!))), 50);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(poll);
  if (code !== 0) throw new Error(`fqtok encode ${args.join(' ')} exited ${code}: ${stderr}`);
  return { result: JSON.parse(stdout) as { encoded: number }, seconds: (performance.now() - started) / 1000, peakMiB: peak / 1024 };
}

/** images/s of `workers` workers at once over `inputs`. */
async function throughput(name: string, inputs: string[], extra: string[], workers: number) {
  const out = path.join(work, `out-${name}-${workers}`);
  const runs = await Promise.all(Array.from({ length: workers }, (_, i) => encode([...inputs, '--out', out, '--shard', `${i}/${workers}`, ...extra])));
  const images = runs.reduce((n, r) => n + r.result.encoded, 0);
  if (images !== IMAGES) throw new Error(`${name}: ${images} images encoded, expected ${IMAGES}`);
  return Number((images / Math.max(...runs.map((r) => r.seconds))).toFixed(2));
}

try {
  // The same images as a folder and as 4 shards.
  const folder = path.join(work, 'folder');
  const shards = path.join(work, 'shards');
  mkdirSync(folder);
  mkdirSync(shards);
  for (let i = 0; i < IMAGES; i++) writeFileSync(path.join(folder, `${key(i)}.jpg`), pool[i % pool.length]!);
  const perShard = IMAGES / 4;
  for (let s = 0; s < 4; s++) await writeShard(path.join(shards, `0000${s}.tar`), s * perShard, perShard);

  const rates: Record<string, number> = {};
  for (const workers of [1, 2]) {
    // Alternating, so that a change in the machine's load falls on both inputs alike.
    rates[`folder_${workers}`] = await throughput('folder', [folder], ['--block-size', String(perShard)], workers);
    rates[`tar_${workers}`] = await throughput('tar', [path.join(shards, '{00000..00003}.tar')], [], workers);
  }
  const result: Record<string, unknown> = {
    model: values.model,
    images: IMAGES,
    images_per_s: rates,
    tar_over_folder: { workers_1: Number((rates.tar_1! / rates.folder_1!).toFixed(3)), workers_2: Number((rates.tar_2! / rates.folder_2!).toFixed(3)) },
    two_workers_over_one: { folder: Number((rates.folder_2! / rates.folder_1!).toFixed(3)), tar: Number((rates.tar_2! / rates.tar_1!).toFixed(3)) },
  };
  if (!values['skip-rss']) {
    const rss: Record<string, unknown> = {};
    for (const count of [Number(values.small), Number(values.large)]) {
      const shard = path.join(work, `big-${count}`, '00000.tar');
      mkdirSync(path.dirname(shard));
      await writeShard(shard, 0, count);
      const r = await encode([shard, '--out', path.join(work, `out-rss-${count}`)]);
      rss[`shard_${count}`] = { images: r.result.encoded, seconds: Number(r.seconds.toFixed(1)), peak_rss_mib: Number(r.peakMiB.toFixed(1)) };
      rmSync(path.dirname(shard), { recursive: true });
    }
    const [small, large] = Object.values(rss) as { peak_rss_mib: number }[];
    result.peak_rss = { ...rss, large_over_small: Number((large!.peak_rss_mib / small!.peak_rss_mib).toFixed(3)) };
  }
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
