// The command line: `fqtok serve | encode | decode | stats | pull | convert | models | openapi`.
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, loadConfig, type Config } from './config.ts';
import { decodeCommand } from './cli/decode-command.ts';
import { encodeCommand } from './cli/encode-command.ts';
import { statsCommand } from './cli/stats-command.ts';
import { convertArgs, runTrainerModule } from './cli/convert-command.ts';
import { localTokenizer, remoteTokenizer, type CliTokenizer, type LocalOptions } from './cli/cli-tokenizer.ts';
import { modelsCommand } from './cli/models-command.ts';
import { pullCommand } from './cli/pull-command.ts';
import { pino } from 'pino';
import { configureLogger } from './logger.ts';
import { ORIENTATIONS } from './imaging/read-image.ts';
import { AUGMENTS } from './imaging/reference-crop.ts';
import { VIEWS } from './tokenize/views.ts';
import { IMAGE_FORMATS } from './imaging/write-image.ts';

const choices = (values: readonly string[]) => values.join('|');

const USAGE = `usage: fqtok <command> [options] [--verbose]

  serve                                   start the HTTP service (settings from FQ_* variables)
  encode <folders or files...> --out DIR  tokenise images into DIR/{i}_{codebook}.npy + DIR/index.jsonl
         [--labels DIR] [--augment ${choices(AUGMENTS)}] [--orientation ${choices(ORIENTATIONS)}] [--model NAME] [--server URL]
         [--backend ${choices(BACKEND_NAMES)}]      in-process backend (default FQ_BACKEND)
         [--batch-size N]                 images per batch, one inference run (default: 64 crops' worth where
                                          the model runs on a GPU, FQ_MAX_BATCH crops' worth on CPU, 16 to a CPU server)
  decode <codes dir or .npz> --out DIR|FILE.npz
                                          rebuild images from {i}_{codebook}.npy files or an .npz of grids or
                                          flat h*w sequences: one image file each into DIR, or one evaluation
                                          archive (arr_0 uint8 [N, H, W, 3]) when --out ends in .npz
         [--format ${choices(IMAGE_FORMATS)}] [--model NAME] [--server URL]
  stats <codes dir or .npz>               codebook usage per codebook: distinct and dead codes, perplexity, top codes (JSON;
                                          reads the model's manifest only)
         [--top K] [--png FILE] [--model NAME] [--server URL]
  pull NAME... [--as NAME] [--weights model|ema]
                                          a released tokenizer (fqgan-triple-ds16, fqgan-dual-ds16, fqgan-triple-ds8,
                                          fqgan-dual-ds8) or any checkpoint on the Hub (hf://owner/repo/file.pt[@revision])
                                          into the Hugging Face cache, converted and installed into FQ_MODELS_DIR
                                          (a running server picks it up); or training-weights (VGG16, LPIPS,
                                          dinov2-small, clip-vit-base-patch16) for fine-tuning. HF_ENDPOINT,
                                          HF_HOME, HF_TOKEN and HF_HUB_OFFLINE mean what they mean everywhere
  convert --checkpoint PATH --out models/NAME [--weights model|ema]
                                          make a released FQGAN checkpoint servable (ONNX + manifest)
  models [--server URL]                   list the models (as GET /models; in-process from their manifests)
  openapi                                 print the OpenAPI document

Commands show their progress and results, and errors; --verbose (-v) adds the log (FQ_LOG_LEVEL, as
readable lines on a terminal, JSON otherwise or with FQ_LOG_FORMAT=json).
`;

function fail(message: string): never {
  process.stderr.write(`fqtok: ${message}\n`);
  process.exit(2);
}

/** The flag's value, checked against the one list its values come from. */
function oneOf<T extends string>(flag: string, value: string, values: readonly T[]): T {
  if (!(values as readonly string[]).includes(value)) fail(`--${flag} must be one of ${values.join(', ')}`);
  return value as T;
}

/** --verbose (anywhere on the line): the service's log lines too; without it a command shows its progress, results and errors only. */
let verbose = false;

/** The settings for commands that work in this process; the logger takes its format (FQ_LOG_FORMAT) from them. */
function configure(env: NodeJS.ProcessEnv = process.env): Config {
  const config = loadConfig(env);
  const quiet = (pino.levels.values[config.logLevel] ?? Infinity) >= pino.levels.values.error! ? config.logLevel : 'error';
  configureLogger({ level: verbose ? config.logLevel : quiet, format: config.logFormat });
  return config;
}

async function client(server: string | undefined, options: { backend?: string } & LocalOptions = {}): Promise<CliTokenizer> {
  if (server) return remoteTokenizer(server);
  const { backend, ...local } = options;
  return localTokenizer(configure(backend ? { ...process.env, FQ_BACKEND: backend } : process.env), local);
}

async function main(args: string[]): Promise<number> {
  verbose = args.includes('--verbose') || args.includes('-v');
  const [command, ...rest] = args.filter((a) => a !== '--verbose' && a !== '-v');
  switch (command) {
    case 'serve':
      await import('./main.ts');
      return -1; // keeps running
    case 'encode': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          out: { type: 'string' },
          labels: { type: 'string' },
          augment: { type: 'string', default: 'none' },
          orientation: { type: 'string', default: 'ignore' },
          model: { type: 'string' },
          server: { type: 'string' },
          backend: { type: 'string' },
          'batch-size': { type: 'string' },
        },
      });
      if (!values.out || positionals.length === 0) fail('encode needs input folders or files and --out DIR');
      if (values.backend) oneOf('backend', values.backend, BACKEND_NAMES);
      if (values.backend && values.server) fail('--backend applies in-process; the server chooses its own');
      const batchSize = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
      if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) fail('--batch-size must be a positive integer');
      const augment = oneOf('augment', values.augment, AUGMENTS);
      const orientation = oneOf('orientation', values.orientation, ORIENTATIONS);
      // In-process, --batch-size sets the run size too: a batch of images is one inference run.
      const runSize = batchSize === undefined ? undefined : batchSize * VIEWS[augment].length;
      const c = await client(values.server, { backend: values.backend, runSize });
      try {
        const summary = await encodeCommand(c, {
          batchSize,
          inputs: positionals,
          out: values.out,
          labels: values.labels,
          model: values.model,
          augment,
          orientation,
        });
        for (const s of summary.skipped) process.stderr.write(`skipped ${s.file}: ${s.reason}\n`);
        const rate = summary.encoded / summary.seconds;
        process.stderr.write(`encoded ${summary.encoded} images in ${summary.seconds.toFixed(1)} s (${rate.toFixed(1)} images/s, batches of ${summary.batchSize})\n`);
        process.stdout.write(JSON.stringify({ encoded: summary.encoded, skipped: summary.skipped.length, out: summary.out }) + '\n');
      } finally {
        await c.close();
      }
      return 0;
    }
    case 'decode': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { out: { type: 'string' }, format: { type: 'string', default: 'png' }, model: { type: 'string' }, server: { type: 'string' } },
      });
      if (!values.out || positionals.length !== 1) fail('decode needs one codes folder or .npz and --out DIR or --out FILE.npz');
      const format = oneOf('format', values.format, IMAGE_FORMATS);
      const c = await client(values.server);
      try {
        const result = await decodeCommand(c, { codes: positionals[0]!, out: values.out, model: values.model, format });
        process.stdout.write(JSON.stringify(result) + '\n');
      } finally {
        await c.close();
      }
      return 0;
    }
    case 'stats': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { top: { type: 'string', default: '10' }, png: { type: 'string' }, model: { type: 'string' }, server: { type: 'string' } },
      });
      if (positionals.length !== 1) fail('stats needs one codes folder or .npz');
      const top = Number(values.top);
      if (!Number.isInteger(top) || top < 0) fail('--top must be a whole number');
      const c = await client(values.server);
      try {
        const result = await statsCommand(c, { codes: positionals[0]!, model: values.model, top, png: values.png });
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      } finally {
        await c.close();
      }
      return 0;
    }
    case 'pull': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { as: { type: 'string' }, weights: { type: 'string', default: 'model' } },
      });
      if (positionals.length === 0) fail('pull needs a name: fqgan-triple-ds16, hf://owner/repo/file.pt[@revision] or training-weights');
      if (values.as && positionals.length > 1) fail('--as names one model: pull one at a time');
      const weights = oneOf('weights', values.weights, ['model', 'ema'] as const);
      const results = await pullCommand(configure(), { targets: positionals, as: values.as, weights });
      for (const r of results) process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    case 'convert':
      return runTrainerModule(configure().python, 'export', convertArgs(rest));
    case 'models': {
      const { values } = parseArgs({ args: rest, options: { server: { type: 'string' } } });
      process.stdout.write(JSON.stringify(await modelsCommand(configure(), values.server), null, 2) + '\n');
      return 0;
    }
    case 'openapi': {
      const { currentOpenApiYaml } = await import('./cli/openapi-command.ts');
      process.stdout.write(currentOpenApiYaml());
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      fail(`unknown command '${command}'\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: Error) => fail(err.message),
);
