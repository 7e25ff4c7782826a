// `fqtok encode` keeps several batches under way at once (files read and cropped while another batch is
// in inference), never more than BATCHES_IN_FLIGHT. (That its files are the same whatever the batch size,
// pipelined or not, is test/cli.test.ts's batch-size test.)
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config.ts';
import { encodeCommand } from '../src/cli/encode-command.ts';
import { BATCHES_IN_FLIGHT, localTokenizer, type CliTokenizer } from '../src/cli/cli-tokenizer.ts';
import { makeImage } from './helpers/images.ts';
import { ROOT } from './helpers/paths.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'fqtok-pipeline-'));
let real: CliTokenizer;
before(async () => {
  for (let i = 0; i < 7; i++) writeFileSync(path.join(dir, `${i}.jpg`), await makeImage(260 + i * 7, 256, 'jpeg', i));
  real = await localTokenizer(loadConfig({ FQ_MODELS_DIR: path.join(ROOT, 'models'), FQ_PREPROCESS_THREADS: '2' }));
});
after(async () => {
  await real?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The real in-process client, with every encode held back until a second one has been asked for:
 * a command that waited for each batch before starting the next would never get an answer (and the
 * test fails after 20 s with a message instead of hanging).
 */
function gatedClient(): CliTokenizer & { maxConcurrent: number } {
  let concurrent = 0;
  let secondArrived: () => void;
  const second = new Promise<void>((resolve) => (secondArrived = resolve));
  const gated = {
    ...real,
    maxConcurrent: 0,
    async encode(...args: Parameters<CliTokenizer['encode']>) {
      concurrent++;
      gated.maxConcurrent = Math.max(gated.maxConcurrent, concurrent);
      if (concurrent >= 2) secondArrived();
      try {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('only one batch was ever in flight')), 20_000);
        });
        await Promise.race([second, timeout]).finally(() => clearTimeout(timer));
        return await real.encode(...args);
      } finally {
        concurrent--;
      }
    },
  };
  return gated;
}

test('several batches are in flight at once, at most BATCHES_IN_FLIGHT, and every file is written', async () => {
  const options = { inputs: [dir], augment: 'none' as const, orientation: 'ignore' as const, progress: false };
  const client = gatedClient();
  const pipelined = await encodeCommand(client, { ...options, out: path.join(dir, 'pipelined'), batchSize: 2 });
  assert.equal(pipelined.encoded, 7);
  assert.deepEqual(pipelined.skipped, []);
  assert.ok(client.maxConcurrent >= 2, `at most ${client.maxConcurrent} batch in flight`);
  assert.ok(client.maxConcurrent <= BATCHES_IN_FLIGHT, `${client.maxConcurrent} batches in flight`);
  const files = readdirSync(path.join(dir, 'pipelined')).filter((f) => f.endsWith('.npy')).sort();
  assert.deepEqual(files, Array.from({ length: 7 }, (_, i) => ['sem_high', 'sem_mid', 'vis'].map((n) => `${i}_${n}.npy`)).flat().sort());
});
