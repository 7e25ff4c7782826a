// `fqtok encode`: tokenises image folders, file lists or WebDataset shards, this worker's share of them, unit by unit.
//
// A pipeline, so that an accelerator never waits for the CPU: up to BATCHES_IN_FLIGHT batches are under
// way at once, each reading its images (files, or members streamed from a shard), decoding and cropping
// them (the preprocessing worker pool) and then running inference; while one batch is in inference the
// next ones are being preprocessed, across unit boundaries too. Results are written in order as batches
// finish. Memory in flight is bounded by BATCHES_IN_FLIGHT x batch size x views x (file bytes + about 1 MB
// of crops and tensor per view), whatever the size of a shard or of the dataset.
//
// Each unit (a shard, or a block of files) is written under a temporary name, moved into place when
// complete and recorded as done (bulk/run-records.ts); a rerun skips done units and redoes the rest.
import { mkdir } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { codeDtype } from '../formats/webdataset.ts';
import { pipelined } from '../tokenize/pipelined.ts';
import { VIEWS } from '../tokenize/views.ts';
import { FQTOK_VERSION } from '../version.ts';
import { encodeBatch, type SampleOutcome } from './bulk/encode-batch.ts';
import { resolveInputs } from './bulk/inputs.ts';
import { isMine, type WorkShare } from './bulk/launcher-env.ts';
import { RunFolder, type DoneRecord, type Layout, type RunIdentity, type SampleError, type WorkerRecord } from './bulk/run-records.ts';
import { openUnitOutput, type UnitOutput } from './bulk/unit-outputs.ts';
import { unitSamples, type UnitSample } from './bulk/unit-samples.ts';
import { planUnits, type Unit } from './bulk/units.ts';
import { BATCHES_IN_FLIGHT, type CliTokenizer, type EncodeOptions } from './cli-tokenizer.ts';

export interface EncodeCommandOptions extends EncodeOptions {
  /** Folders, image files, or tar shards (paths, globs, brace ranges). */
  inputs: string[];
  /** Files listing images, one per line (`path` or `path<TAB>label`). */
  fileLists?: string[];
  out: string;
  /** Folder for `{i}.npy` class labels (reference layout), as the reference writes them; none when undefined. */
  labels?: string;
  /** Default: code shards from shards, the reference layout from files. */
  layout?: Layout;
  /** Images per unit of a file job. */
  blockSize?: number;
  /** This worker's share of the units; default all of them. */
  share?: WorkShare;
  /** The CUDA device this worker uses, for its records. */
  cudaDevice?: number;
  /** `skip` (default): record a bad sample and go on; `fail`: stop at the first. */
  onError?: 'skip' | 'fail';
  /** Images per batch; default: the client's run size (crops) divided by the views per image. */
  batchSize?: number;
  /** Draw a progress bar on stderr (only drawn when stderr is a terminal). */
  progress?: boolean;
}

export interface EncodeSummary {
  encoded: number;
  skipped: { file: string; reason: string }[];
  out: string;
  batchSize: number;
  seconds: number;
  shard: string;
  units: { assigned: number; doneBefore: number; doneNow: number; failed: { unit: string; reason: string }[] };
}

/** Images per batch when the user does not say: one inference run's worth of crops. */
export async function defaultBatchSize(client: CliTokenizer, options: EncodeOptions): Promise<number> {
  return Math.max(1, Math.floor((await client.runSize(options.model)) / VIEWS[options.augment].length));
}

/** What flows through the pipeline: a unit's start, its batches in order, its end (or its input failing). */
type Step = { unit: Unit; kind: 'start' | 'end' } | { unit: Unit; kind: 'batch'; samples: UnitSample[] } | { unit: Unit; kind: 'failed'; error: Error };
type StepResult = Exclude<Step, { kind: 'batch' }> | { unit: Unit; kind: 'batch'; outcomes: SampleOutcome[] };

async function* steps(units: Unit[], batchSize: number): AsyncGenerator<Step> {
  for (const unit of units) {
    yield { unit, kind: 'start' };
    let batch: UnitSample[] = [];
    try {
      for await (const sample of unitSamples(unit)) {
        batch.push(sample);
        if (batch.length === batchSize) {
          yield { unit, kind: 'batch', samples: batch };
          batch = [];
        }
      }
    } catch (err) {
      // An unreadable or cut shard: this unit fails, the others go on (a rerun retries it).
      const where = unit.kind === 'shard' ? unit.shard : `block ${unit.name}`;
      yield { unit, kind: 'failed', error: new Error(`${where}: ${(err as Error).message}`, { cause: err }) };
      continue;
    }
    if (batch.length > 0) yield { unit, kind: 'batch', samples: batch };
    yield { unit, kind: 'end' };
  }
}

function progressBar(enabled: boolean, units: number) {
  const bar = new cliProgress.SingleBar(
    {
      format: 'encode [{bar}] {value}/{total} units | {images} images | {rate} images/s | {eta_formatted} left',
      stream: process.stderr,
      noTTYOutput: false, // cli-progress draws nothing when stderr is not a terminal; logs and pipes stay clean
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let images = 0;
  if (enabled) bar.start(units, 0, { images: 0, rate: '-' });
  return {
    images(n: number) {
      images += n;
      if (enabled) bar.update({ images, rate: (images / ((performance.now() - started) / 1000)).toFixed(1) });
    },
    unitDone() {
      if (enabled) bar.increment(1);
    },
    stop() {
      if (enabled) bar.stop();
    },
  };
}

export async function encodeCommand(client: CliTokenizer, options: EncodeCommandOptions): Promise<EncodeSummary> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const plan = planUnits(await resolveInputs(options.inputs, options.fileLists), options.blockSize);
  const layout = options.layout ?? (plan.input === 'shards' ? 'webdataset' : 'reference');
  if (options.labels && layout !== 'reference') throw new Error('--labels writes the reference layout\'s {i}.npy files; code shards carry labels as .cls members');
  const share = options.share ?? { index: 0, count: 1, source: 'single' };
  const shardText = `${share.index}/${share.count}`;
  const model = await client.describe(options.model);
  const views = VIEWS[options.augment].length;
  const cells = model.grid[0] * model.grid[1];
  const shardDtype = codeDtype(model.codebooks.map((c) => c.size));
  const identity: RunIdentity = {
    input: plan.input,
    layout,
    model: { name: model.name, version: model.version, fingerprint: model.fingerprint },
    augment: options.augment,
    orientation: options.orientation,
    codebooks: model.codebooks.map((c) => c.name),
    dtype: layout === 'webdataset' ? shardDtype : 'int64',
    ...(plan.files ? { files: plan.files } : {}),
  };
  await mkdir(options.out, { recursive: true });
  if (options.labels) await mkdir(options.labels, { recursive: true });
  const folder = new RunFolder(options.out);
  await folder.claim(identity, FQTOK_VERSION);

  const mine = plan.units.filter((_, k) => isMine(k, share));
  const done = new Set((await folder.doneRecords()).map((r) => r.unit));
  const todo = mine.filter((u) => !done.has(u.name));
  const batchSize = options.batchSize ?? (todo.length > 0 ? await defaultBatchSize(client, options) : 1);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);

  const summary: EncodeSummary = {
    encoded: 0,
    skipped: [],
    out: options.out,
    batchSize,
    seconds: 0,
    shard: shardText,
    units: { assigned: mine.length, doneBefore: mine.length - todo.length, doneNow: 0, failed: [] },
  };
  const worker: WorkerRecord = {
    shard: shardText,
    source: share.source,
    host: folder.host,
    pid: process.pid,
    cuda_device: options.cudaDevice ?? 0,
    state: 'running',
    units: mine.map((u) => u.name),
    done_before: summary.units.doneBefore,
    done_now: 0,
    failed: [],
    images: 0,
    errors: 0,
    started_at: startedAt,
    updated_at: startedAt,
  };
  const saveWorker = (state: WorkerRecord['state'] = 'running') => {
    Object.assign(worker, { state, done_now: summary.units.doneNow, failed: summary.units.failed.map((f) => f.unit), images: summary.encoded });
    worker.errors = summary.skipped.length;
    worker.updated_at = new Date().toISOString();
    return folder.recordWorker(worker);
  };
  await saveWorker();

  const bar = progressBar(options.progress ?? true, todo.length);
  const outputSettings = { folder, layout, labels: options.labels, codebooks: identity.codebooks, views, cells, dtype: shardDtype };
  let current: { unit: Unit; output: UnitOutput; count: number; errors: SampleError[]; started: number; startedAt: string } | undefined;
  const step = async (s: Step): Promise<StepResult> => (s.kind === 'batch' ? { unit: s.unit, kind: 'batch', outcomes: await encodeBatch(client, s.samples, options) } : s);
  try {
    for await (const result of pipelined(steps(todo, batchSize), step, BATCHES_IN_FLIGHT)) {
      const { unit } = result;
      if (result.kind === 'start') {
        await folder.clearPartials(unit.name);
        current = { unit, output: await openUnitOutput(unit.name, outputSettings), count: 0, errors: [], started: performance.now(), startedAt: new Date().toISOString() };
      } else if (result.kind === 'batch') {
        for (const outcome of result.outcomes) {
          const { sample } = outcome;
          if ('error' in outcome) {
            if (options.onError === 'fail') throw new Error(`${sample.source}: ${outcome.error} (--on-error fail)`);
            current!.errors.push({ key: sample.key, source: sample.source, reason: outcome.error });
            summary.skipped.push({ file: sample.source, reason: outcome.error });
            continue;
          }
          await current!.output.add({ key: sample.key, source: sample.source, label: sample.label, carried: sample.carried, tokens: outcome.tokens });
          current!.count++;
          summary.encoded++;
        }
        bar.images(result.outcomes.length);
      } else if (result.kind === 'failed') {
        await current!.output.abort();
        await folder.clearPartials(unit.name);
        current = undefined;
        if (options.onError === 'fail') throw new Error(`${unit.name}: ${result.error.message}`);
        summary.units.failed.push({ unit: unit.name, reason: result.error.message });
        await saveWorker();
      } else {
        const c = current!;
        const written = await c.output.commit();
        current = undefined;
        const record: DoneRecord = {
          unit: unit.name,
          outputs: written.outputs,
          count: c.count,
          errors: c.errors,
          sha256: written.sha256,
          bytes: written.bytes,
          model: identity.model,
          augment: identity.augment,
          orientation: identity.orientation,
          layout,
          dtype: identity.dtype,
          fqtok_version: FQTOK_VERSION,
          worker: { shard: shardText, host: folder.host, pid: process.pid },
          started_at: c.startedAt,
          finished_at: new Date().toISOString(),
          seconds: (performance.now() - c.started) / 1000,
        };
        await folder.recordDone(record);
        await folder.clearPartials(unit.name);
        summary.units.doneNow++;
        await saveWorker();
        bar.unitDone();
      }
    }
  } catch (err) {
    await current?.output.abort().catch(() => {});
    await saveWorker('failed').catch(() => {});
    throw err;
  } finally {
    bar.stop();
  }
  await saveWorker(summary.units.failed.length > 0 ? 'failed' : 'finished');
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}
