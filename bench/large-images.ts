// Memory under large images: the server's RSS after bursts of near-limit images and after idling. Prints one JSON object.
//
//   node --import tsx bench/large-images.ts [--bursts 4] [--burst 8] [--idle-seconds 30] [--width 9200 --height 6900] [--env MALLOC_ARENA_MAX=2]
//
// Each burst sends `--burst` concurrent /encode requests of one JPEG each, just under the default
// 64-megapixel FQ_MAX_INPUT_PIXELS (9200 x 6900 = 63.5 MP, ~190 MB decoded). RSS (VmRSS) and its
// peak (VmHWM) come from /proc/<pid>/status of the server (Linux), after every burst and after
// `--idle-seconds` without requests. `--env` passes extra environment variables to the server
// (e.g. FQ_MAX_DECODE_PIXELS_IN_FLIGHT, MALLOC_ARENA_MAX) to compare settings across runs.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { startServerProcess } from '../test/helpers/server-process.ts';

const { values } = parseArgs({
  options: {
    bursts: { type: 'string', default: '4' },
    burst: { type: 'string', default: '8' },
    'idle-seconds': { type: 'string', default: '30' },
    width: { type: 'string', default: '9200' },
    height: { type: 'string', default: '6900' },
    env: { type: 'string', multiple: true, default: [] },
  },
});
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

/** VmRSS and VmHWM of a process in MB. */
async function memory(pid: number): Promise<{ rss_mb: number; peak_rss_mb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { rss_mb: Math.round(kb('VmRSS') / 1024), peak_rss_mb: Math.round(kb('VmHWM') / 1024) };
}

const width = Number(values.width);
const height = Number(values.height);
const jpeg = await sharp({ create: { width, height, channels: 3, background: '#7a8a6a', noise: { type: 'gaussian', mean: 120, sigma: 6 } } })
  .jpeg({ quality: 80 })
  .toBuffer();
const { child, url } = await startServerProcess({ FQ_PREPROCESS_THREADS: '0', ...extraEnv }, { keepLog: false });
try {
  const pid = child.pid!;
  const samples: Record<string, unknown>[] = [{ when: 'started', ...(await memory(pid)) }];
  for (let b = 1; b <= Number(values.bursts); b++) {
    const started = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: Number(values.burst) }, async () => {
        const res = await fetch(`${url}/encode`, { method: 'POST', body: new Uint8Array(jpeg), headers: { 'content-type': 'image/jpeg' } });
        await res.arrayBuffer();
        return res.status;
      }),
    );
    const counts: Record<string, number> = {};
    for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
    samples.push({ when: `after burst ${b}`, seconds: Math.round((performance.now() - started) / 100) / 10, statuses: counts, ...(await memory(pid)) });
  }
  await new Promise((r) => setTimeout(r, Number(values['idle-seconds']) * 1000));
  samples.push({ when: `after idling ${values['idle-seconds']} s`, ...(await memory(pid)) });
  console.log(
    JSON.stringify(
      { image: { width, height, megapixels: (width * height) / 1e6, jpeg_mb: Math.round(jpeg.length / 1e5) / 10 }, burst: Number(values.burst), env: extraEnv, samples },
      null,
      2,
    ),
  );
} finally {
  child.kill('SIGTERM');
}
