// `fqtok encode`'s command line: flags, this worker's share and GPU, then the run (or --plan, or --status OUT).
import { parseArgs } from 'node:util';
import { BACKEND_NAMES } from '../config.ts';
import { ORIENTATIONS } from '../imaging/read-image.ts';
import { AUGMENTS } from '../imaging/reference-crop.ts';
import { VIEWS } from '../tokenize/views.ts';
import { resolveInputs } from './bulk/inputs.ts';
import { isMine, workerDevice, workShare, type WorkShare } from './bulk/launcher-env.ts';
import { planUnits } from './bulk/units.ts';
import type { CliTokenizer, LocalOptions } from './cli-tokenizer.ts';
import { encodeCommand } from './encode-command.ts';
import { encodeStatus } from './encode-status.ts';

const choices = (values: readonly string[]) => values.join('|');

export const ENCODE_USAGE = `  encode <inputs...> --out DIR            tokenise images: folders (ImageFolder labels), image files, or WebDataset
                                          tar shards (paths, globs, brace ranges: shards/{00000..00127}.tar)
         [--file-list FILE]               images listed one per line (path, or path<TAB>label)
         [--layout reference|webdataset]  reference: DIR/{i}_{codebook}.npy (default for folders and files);
                                          webdataset: one code tar per input shard or block (default for shards)
         [--labels DIR] [--augment ${choices(AUGMENTS)}] [--orientation ${choices(ORIENTATIONS)}] [--model NAME] [--server URL]
         [--shard i/n]                    this worker's share (default: from torchrun, Slurm or a Kubernetes
                                          Indexed Job's environment, else all of it)
         [--block-size N]                 images per unit for folders and files (default 1000)
         [--on-error skip|fail]           a bad image is recorded and skipped (default), or stops the run
         [--backend ${choices(BACKEND_NAMES)}]      in-process backend (default FQ_BACKEND)
         [--batch-size N]                 images per batch, one inference run (default: 64 crops' worth where
                                          the model runs on a GPU, FQ_MAX_BATCH crops' worth on CPU, 16 to a CPU server)
         [--plan]                         print this worker's share, GPU and units, and stop
  encode --status DIR                     progress of every worker writing DIR: units, images, errors, images/s
`;

export interface EncodeCliDeps {
  client(server: string | undefined, options: { backend?: string; env?: NodeJS.ProcessEnv } & LocalOptions): Promise<CliTokenizer>;
  fail(message: string): never;
}

function oneOf<T extends string>(deps: EncodeCliDeps, flag: string, value: string, values: readonly T[]): T {
  if (!(values as readonly string[]).includes(value)) deps.fail(`--${flag} must be one of ${values.join(', ')}`);
  return value as T;
}

function positive(deps: EncodeCliDeps, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(Number.isInteger(n) && n > 0)) deps.fail(`--${flag} must be a positive integer`);
  return n;
}

/** Runs `fqtok encode ARGS`; returns the exit code (1 when some of this worker's units failed). */
export async function encodeCli(args: string[], deps: EncodeCliDeps, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      'file-list': { type: 'string', multiple: true },
      layout: { type: 'string' },
      labels: { type: 'string' },
      augment: { type: 'string', default: 'none' },
      orientation: { type: 'string', default: 'ignore' },
      model: { type: 'string' },
      server: { type: 'string' },
      backend: { type: 'string' },
      'batch-size': { type: 'string' },
      'block-size': { type: 'string' },
      shard: { type: 'string' },
      'on-error': { type: 'string', default: 'skip' },
      plan: { type: 'boolean', default: false },
      status: { type: 'string' },
    },
  });
  if (values.status !== undefined) {
    process.stdout.write(JSON.stringify(await encodeStatus(values.status), null, 2) + '\n');
    return 0;
  }
  const fileLists = values['file-list'] ?? [];
  if (!values.out || (positionals.length === 0 && fileLists.length === 0)) deps.fail('encode needs inputs (folders, files, shards or --file-list) and --out DIR');
  if (values.backend) oneOf(deps, 'backend', values.backend, BACKEND_NAMES);
  if (values.backend && values.server) deps.fail('--backend applies in-process; the server chooses its own');
  const batchSize = positive(deps, 'batch-size', values['batch-size']);
  const blockSize = positive(deps, 'block-size', values['block-size']);
  const augment = oneOf(deps, 'augment', values.augment, AUGMENTS);
  const orientation = oneOf(deps, 'orientation', values.orientation, ORIENTATIONS);
  const layout = values.layout === undefined ? undefined : oneOf(deps, 'layout', values.layout, ['reference', 'webdataset'] as const);
  const onError = oneOf(deps, 'on-error', values['on-error'], ['skip', 'fail'] as const);
  let share: WorkShare;
  let device: ReturnType<typeof workerDevice>;
  try {
    share = workShare(env, values.shard);
    device = workerDevice(env);
  } catch (err) {
    deps.fail((err as Error).message);
  }

  if (values.plan) {
    const plan = planUnits(await resolveInputs(positionals, fileLists), blockSize);
    const mine = plan.units.filter((_, k) => isMine(k, share));
    const plain = {
      shard: `${share.index}/${share.count}`,
      share_from: share.source,
      cuda_device: device.cudaDevice,
      device_from: device.source,
      input: plan.input,
      layout: layout ?? (plan.input === 'shards' ? 'webdataset' : 'reference'),
      units: plan.units.length,
      mine: mine.map((u) => u.name),
    };
    process.stdout.write(JSON.stringify(plain) + '\n');
    return 0;
  }

  // In-process, --batch-size sets the run size too: a batch of images is one inference run. The GPU is
  // the worker's: FQ_CUDA_DEVICE_ID reaches both backends (the CUDA provider's device, the torch worker's cuda:N).
  const runSize = batchSize === undefined ? undefined : batchSize * VIEWS[augment].length;
  const c = await deps.client(values.server, { backend: values.backend, runSize, env: { ...env, FQ_CUDA_DEVICE_ID: String(device.cudaDevice) } });
  try {
    const summary = await encodeCommand(c, {
      batchSize,
      blockSize,
      inputs: positionals,
      fileLists,
      out: values.out,
      labels: values.labels,
      layout,
      model: values.model,
      augment,
      orientation,
      share,
      cudaDevice: device.cudaDevice,
      onError,
    });
    const { units } = summary;
    const shown = summary.skipped.slice(0, 20);
    for (const s of shown) process.stderr.write(`skipped ${s.file}: ${s.reason}\n`);
    if (summary.skipped.length > shown.length) process.stderr.write(`... and ${summary.skipped.length - shown.length} more (the done records in ${values.out}/.fqtok/done list them)\n`);
    for (const f of units.failed) process.stderr.write(`unit ${f.unit} failed: ${f.reason} (a rerun retries it)\n`);
    const rate = summary.encoded / summary.seconds;
    process.stderr.write(
      `worker ${summary.shard} (${share.source}): ${units.assigned} units, ${units.doneBefore} done before, ${units.doneNow} done now, ${units.failed.length} failed; ` +
        `encoded ${summary.encoded} images in ${summary.seconds.toFixed(1)} s (${rate.toFixed(1)} images/s, batches of ${summary.batchSize})\n`,
    );
    process.stdout.write(
      JSON.stringify({ encoded: summary.encoded, skipped: summary.skipped.length, out: summary.out, shard: summary.shard, units_done: units.doneBefore + units.doneNow, units_failed: units.failed.length }) +
        '\n',
    );
    return units.failed.length > 0 ? 1 : 0;
  } finally {
    await c.close();
  }
}
