// The command line: `fqtok serve | encode | decode | stats | pull | convert | models | openapi`.
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from './config.ts';
import { decodeCommand } from './cli/decode-command.ts';
import { encodeCli, ENCODE_USAGE } from './cli/encode-cli.ts';
import { statsCommand } from './cli/stats-command.ts';
import { convertArgs, runTrainerModule } from './cli/convert-command.ts';
import { localTokenizer, remoteTokenizer, type CliTokenizer, type LocalOptions } from './cli/cli-tokenizer.ts';
import { modelsCommand } from './cli/models-command.ts';
import { pullCommand } from './cli/pull-command.ts';
import { pino } from 'pino';
import { configureLogger } from './logger.ts';
import { IMAGE_FORMATS } from './imaging/write-image.ts';

const choices = (values: readonly string[]) => values.join('|');

const USAGE = `usage: fqtok <command> [options] [--verbose]

  serve                                   start the HTTP service (settings from FQ_* variables)
${ENCODE_USAGE}  decode <codes dir or .npz> --out DIR|FILE.npz
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

async function client(server: string | undefined, options: { backend?: string; env?: NodeJS.ProcessEnv } & LocalOptions = {}): Promise<CliTokenizer> {
  if (server) return remoteTokenizer(server);
  const { backend, env = process.env, ...local } = options;
  return localTokenizer(configure(backend ? { ...env, FQ_BACKEND: backend } : env), local);
}

async function main(args: string[]): Promise<number> {
  verbose = args.includes('--verbose') || args.includes('-v');
  const [command, ...rest] = args.filter((a) => a !== '--verbose' && a !== '-v');
  switch (command) {
    case 'serve':
      await import('./main.ts');
      return -1; // keeps running
    case 'encode':
      return encodeCli(rest, { client, fail });
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
