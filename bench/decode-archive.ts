// Benchmark of `fqtok decode CODES --out samples.npz`: images/s and the CLI's peak RSS at N=200 and N=2,000,
// in one run. Prints one JSON object.
//
//   node --import tsx bench/decode-archive.ts [--models-dir models] [--model NAME] [--small 200] [--large 2000]
//
// Codes are the reference extractor's files ({i}_{codebook}.npy, int64 [1, 1, h*w]) of random indices.
// The CLI runs in-process (no server) as a child; its peak RSS is the kernel's high-water mark (VmHWM),
// polled from /proc until it exits. The archive is streamed, so peak RSS should not grow with N; the
// archive itself grows by H*W*3 bytes an image. The check at the end reads it back with numpy.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeNpy } from '../src/formats/npz.ts';
import { readManifest } from '../src/backends/manifest.ts';
import { DEFAULT_PYTHON } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    'models-dir': { type: 'string', default: path.join(ROOT, 'models') },
    model: { type: 'string', default: 'fqgan-triple-vq16-tiny' },
    small: { type: 'string', default: '200' },
    large: { type: 'string', default: '2000' },
  },
});
const manifest = await readManifest(path.join(values['models-dir'], values.model));
const cells = manifest.grid[0] * manifest.grid[1];
const work = mkdtempSync(path.join(tmpdir(), 'fqtok-bench-archive-'));

function writeCodes(dir: string, count: number): void {
  mkdirSync(dir, { recursive: true });
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  for (let i = 0; i < count; i++) {
    for (const cb of manifest.codebooks) {
      const data = Int32Array.from({ length: cells }, () => random() % cb.size);
      writeFileSync(path.join(dir, `${i}_${cb.name}.npy`), writeNpy({ shape: [1, 1, cells], data }, 'int64'));
    }
  }
}

function peakRssKiB(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0; // exited between polls
  }
}

async function decodeToArchive(count: number) {
  const codes = path.join(work, `codes-${count}`);
  writeCodes(codes, count);
  const out = path.join(work, `samples-${count}.npz`);
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'decode', codes, '--out', out, '--model', values.model], {
    cwd: ROOT,
    env: { ...process.env, FQ_LOG_LEVEL: 'silent', FQ_MODELS_DIR: values['models-dir'] },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakRssKiB(child.pid!))), 50);
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(poll);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`fqtok decode exited ${code}`);
  const shape = execFileSync(process.env.FQ_PYTHON || DEFAULT_PYTHON, [
    '-c',
    'import sys, json, numpy as np, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nf = z.open("arr_0.npy")\nv = np.lib.format.read_magic(f)\nshape, _, dtype = np.lib.format._read_array_header(f, v)\nprint(json.dumps([str(dtype), list(shape)]))',
    out,
  ]).toString();
  const result = {
    images: count,
    seconds: Number(seconds.toFixed(2)),
    // Includes the CLI's start-up (node + tsx + loading the model): a fixed cost that weighs more at small N.
    images_per_s: Number((count / seconds).toFixed(1)),
    peak_rss_mib: Number((peak / 1024).toFixed(1)),
    archive_mib: Number((statSync(out).size / 2 ** 20).toFixed(1)),
    arr_0: JSON.parse(shape) as [string, number[]],
    cli: JSON.parse(stdout) as unknown,
  };
  rmSync(codes, { recursive: true });
  rmSync(out);
  return result;
}

try {
  const small = await decodeToArchive(Number(values.small));
  const large = await decodeToArchive(Number(values.large));
  console.log(
    JSON.stringify(
      {
        model: values.model,
        image: [manifest.grid[0] * manifest.downsample, manifest.grid[1] * manifest.downsample],
        small,
        large,
        rss_large_over_small: Number((large.peak_rss_mib / small.peak_rss_mib).toFixed(3)),
        // Decode throughput without the fixed start-up: the extra images over the extra seconds.
        marginal_images_per_s: Number(((large.images - small.images) / (large.seconds - small.seconds)).toFixed(1)),
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
