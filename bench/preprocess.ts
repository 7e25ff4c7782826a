// Benchmark: a 12-megapixel JPEG to its reference crop. Prints one JSON object.
//
//   node --import tsx bench/preprocess.ts [--runs 7] [--width 4000 --height 3000] [--quality 90]
//
// in_thread_*: decode and crop timed separately on this thread (medians), as wall time and as process
// CPU time (the better figure on a shared machine: it does not count time spent waiting for a core).
// pool: the same image through createPreprocessor (worker threads), end to end, and how late the main
// thread's event loop ran meanwhile; that delay is what other requests would feel.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import sharp from 'sharp';
import { readImage } from '../src/imaging/read-image.ts';
import { createPreprocessor } from '../src/imaging/preprocess.ts';
import { centerCropArr } from '../src/imaging/reference-crop.ts';

const TARGET_MS = 150;
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    width: { type: 'string', default: '4000' },
    height: { type: 'string', default: '3000' },
    quality: { type: 'string', default: '90' },
  },
});
const runs = Number(values.runs);
const width = Number(values.width);
const height = Number(values.height);
const quality = Number(values.quality);

/** Photo-like content: smooth colour fields, edges and sensor-like noise, so the JPEG has a camera's entropy. */
async function makeJpeg(): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const noise = ((seed >>> 16) % 25) - 12;
      const i = (y * width + x) * 3;
      const edge = ((x >> 7) + (y >> 7)) % 3 === 0 ? 40 : 0;
      pixels[i] = Math.max(0, Math.min(255, ((x * 255) / width) + noise + edge));
      pixels[i + 1] = Math.max(0, Math.min(255, ((y * 255) / height) + noise));
      pixels[i + 2] = Math.max(0, Math.min(255, 128 + 100 * Math.sin((x + y) / 60) + noise - edge));
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality, chromaSubsampling: '4:2:0' }).toBuffer();
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const round = (x: number) => Math.round(x * 10) / 10;

const jpeg = await makeJpeg();
const maxInputPixels = width * height;

/** Process CPU time in ms; unlike wall time it does not grow when other programs share the cores. */
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

const wall = { decode: [] as number[], crop: [] as number[] };
const cpu = { decode: [] as number[], crop: [] as number[] };
for (let r = 0; r <= runs; r++) {
  const [t0, c0] = [performance.now(), cpuMs()];
  const image = await readImage(jpeg, { orientation: 'ignore', maxInputPixels });
  const [t1, c1] = [performance.now(), cpuMs()];
  centerCropArr(image, 256);
  const [t2, c2] = [performance.now(), cpuMs()];
  if (r === 0) continue; // warm-up: JIT and libvips start-up
  wall.decode.push(t1 - t0);
  wall.crop.push(t2 - t1);
  cpu.decode.push(c1 - c0);
  cpu.crop.push(c2 - c1);
}

const preprocessor = createPreprocessor({ maxInputPixels, threads: 1 });
await preprocessor.preprocess(jpeg, { imageSize: 256 }); // start the worker and compile its code
const delay = monitorEventLoopDelay({ resolution: 1 });
const latencyMs: number[] = [];
delay.enable();
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  await preprocessor.preprocess(jpeg, { imageSize: 256 });
  latencyMs.push(performance.now() - t0);
}
delay.disable();
await preprocessor.close();

const totals = (t: { decode: number[]; crop: number[] }) => median(t.decode.map((d, i) => d + t.crop[i]!));
console.log(
  JSON.stringify(
    {
      image: { width, height, megapixels: round((width * height) / 1e6), jpeg_bytes: jpeg.length, quality, subsampling: '4:2:0' },
      runs,
      machine: {
        cpus: os.availableParallelism(),
        model: os.cpus()[0]?.model ?? 'unknown',
        node: process.version,
        load_average_1m: round(os.loadavg()[0]!),
      },
      in_thread_wall_ms: { decode: round(median(wall.decode)), crop: round(median(wall.crop)), total: round(totals(wall)) },
      in_thread_cpu_ms: { decode: round(median(cpu.decode)), crop: round(median(cpu.crop)), total: round(totals(cpu)) },
      pool: {
        latency_ms: { median: round(median(latencyMs)), max: round(Math.max(...latencyMs)) },
        main_event_loop_delay_ms: { p50: round(delay.percentile(50) / 1e6), p99: round(delay.percentile(99) / 1e6), max: round(delay.max / 1e6) },
      },
      target_ms: TARGET_MS,
      meets_target: median(latencyMs) < TARGET_MS,
    },
    null,
    2,
  ),
);
