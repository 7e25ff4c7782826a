// Every setting of fqtok, read from FQ_* environment variables and validated once at start-up.
import path from 'node:path';
import { z } from 'zod';
import { hubSettings, type HubSettings } from './hub/hub-settings.ts';
import { LOG_FORMATS } from './logger.ts';

/** FQ_PYTHON's default: where Debian's python3-torch lives. */
export const DEFAULT_PYTHON = '/usr/bin/python3';

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

const executionProvider = z.enum(['cpu', 'cuda', 'webgpu']);
export type ExecutionProviderName = z.infer<typeof executionProvider>;

/** FQ_BACKEND's values (and the CLI's --backend). */
export const BACKEND_NAMES = ['onnx', 'torch', 'auto'] as const;
const backendName = z.enum(BACKEND_NAMES);
export type BackendName = z.infer<typeof backendName>;
const precision = z.enum(['fp32', 'tf32', 'bf16', 'fp16']);
export type Precision = z.infer<typeof precision>;
/** FQ_ROLE: `admin` is the whole service (jobs, their SQLite database, publishing, and serving); `replica` serves only. */
export const ROLES = ['admin', 'replica'] as const;
export type Role = (typeof ROLES)[number];

const flag = z.enum(['0', '1', 'false', 'true']).transform((v) => v === '1' || v === 'true');

/** The one declaration of each setting: its variable, default and check, then its name in `Config`. */
const configSchema = z
  .object({
    FQ_ROLE: z.enum(ROLES).default('admin'),
    FQ_HOST: z.string().default('0.0.0.0'),
    FQ_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    FQ_MODELS_DIR: z.string().default('./models'),
    FQ_DEFAULT_MODEL: z.string().optional(),
    FQ_MODELS_POLL_MS: nonNegativeInt.default(2_000), // hot pickup's rescan of FQ_MODELS_DIR; 0: file-system events only
    FQ_MODELS_WATCH: flag.default(true), // hot pickup on file-system events (missed on NFS/EFS: the poll covers those)
    // What the server pulls from the Hub at start-up when missing: released names, hf:// ids, training-weights.
    FQ_PULL: z
      .string()
      .default('')
      .transform((s) => s.split(/[\s,]+/).filter(Boolean)),
    FQ_VGG16_URL: z.string().url().optional(), // a mirror of torchvision's vgg16-397923af.pth (#sha256=<hex> pins another file)
    FQ_LPIPS_VGG_URL: z.string().url().optional(), // a mirror of LPIPS' v0.1 vgg.pth
    FQ_DATA_DIR: z.string().default('./data'),
    FQ_DATASETS_DIR: z.string().optional(),
    FQ_WEIGHTS_DIR: z.string().optional(),
    FQ_ADMIN_TOKEN: z
      .string()
      .min(16, 'FQ_ADMIN_TOKEN must be at least 16 characters')
      // The Authorization header's token is one run of non-space characters: a token with spaces could never match.
      .regex(/^\S+$/, 'FQ_ADMIN_TOKEN must not contain spaces or other whitespace (it could never match a bearer token)')
      .optional(),
    FQ_PYTHON: z.string().default(DEFAULT_PYTHON),
    FQ_EXECUTION_PROVIDERS: z
      .string()
      .default('cpu')
      .transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean))
      .pipe(z.array(executionProvider).min(1)),
    FQ_CUDA_DEVICE_ID: nonNegativeInt.default(0), // the cuda execution provider's device
    FQ_WEBGPU_LAYOUT: z.enum(['NCHW', 'NHWC']).optional(), // WebGPU EP preferredLayout; unset: onnxruntime's default
    FQ_BACKEND: backendName.default('onnx'),
    FQ_PRECISION: precision.default('fp32'), // torch backend on CUDA; CPU always runs fp32
    FQ_TORCH_COMPILE: flag.default(false), // torch.compile in the torch worker (torch >= 2 only)
    FQ_INTRA_OP_THREADS: nonNegativeInt.default(0), // 0: onnxruntime picks (one per core)
    FQ_MAX_BATCH: positiveInt.default(8),
    FQ_BATCH_WAIT_MS: nonNegativeInt.default(2),
    FQ_MAX_QUEUE: positiveInt.default(256), // image views admitted (being prepared or waiting) per model and operation
    FQ_REQUEST_TIMEOUT_MS: positiveInt.default(60_000),
    FQ_MAX_BODY_BYTES: positiveInt.default(64 * 1024 * 1024),
    FQ_MAX_BODY_BYTES_IN_FLIGHT: positiveInt.optional(), // all request bodies held at once; default 2 x FQ_MAX_BODY_BYTES
    FQ_BODY_IDLE_TIMEOUT_MS: positiveInt.default(30_000), // longest pause in a request body, then 408
    FQ_WRITE_IDLE_TIMEOUT_MS: positiveInt.default(30_000), // longest a streamed response may wait for the client to read
    FQ_MAX_IMAGES: positiveInt.default(64), // per request
    FQ_MAX_INPUT_PIXELS: positiveInt.default(64_000_000), // per image; refused before decoding
    FQ_MAX_DECODE_PIXELS_IN_FLIGHT: positiveInt.optional(), // all images being decoded at once; default 2 x FQ_MAX_INPUT_PIXELS
    FQ_PREPROCESS_THREADS: nonNegativeInt.default(0), // 0: one per core
    FQ_JOB_CONCURRENCY: positiveInt.default(1),
    FQ_JOB_CANCEL_GRACE_MS: positiveInt.default(8_000), // also the trainer's own stop deadline: < 10 s
    FQ_SHUTDOWN_GRACE_MS: positiveInt.default(30_000),
    FQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    FQ_LOG_FORMAT: z.enum(LOG_FORMATS).default('auto'), // auto: readable lines on a terminal, JSON otherwise
  })
  .transform((e) => {
    const dataDir = path.resolve(e.FQ_DATA_DIR);
    return {
      /** admin: jobs, the database, publishing, and serving; replica: encode, decode, stats, models (no database, no admin routes). */
      role: e.FQ_ROLE,
      host: e.FQ_HOST,
      port: e.FQ_PORT,
      modelsDir: path.resolve(e.FQ_MODELS_DIR),
      defaultModel: e.FQ_DEFAULT_MODEL,
      /** Hot pickup: rescan FQ_MODELS_DIR this often (0: events only), and on file-system events. */
      modelsPollMs: e.FQ_MODELS_POLL_MS,
      modelsWatch: e.FQ_MODELS_WATCH,
      /** Pulled at start-up when missing (`fqtok pull` names). */
      pull: e.FQ_PULL,
      /** Where training weights outside the Hub come from, when not their official URLs. */
      weightUrls: { vgg16: e.FQ_VGG16_URL, 'lpips-vgg-v0.1': e.FQ_LPIPS_VGG_URL } as Record<string, string | undefined>,
      dataDir,
      datasetsDir: path.resolve(e.FQ_DATASETS_DIR ?? path.join(dataDir, 'datasets')),
      /** LPIPS/VGG16 and teacher weights for fine-tuning (never downloaded). */
      weightsDir: path.resolve(e.FQ_WEIGHTS_DIR ?? path.join(dataDir, 'weights')),
      adminToken: e.FQ_ADMIN_TOKEN,
      python: e.FQ_PYTHON,
      executionProviders: e.FQ_EXECUTION_PROVIDERS,
      /** CUDA device for the cuda provider. */
      cudaDeviceId: e.FQ_CUDA_DEVICE_ID,
      /** WebGPU EP's preferredLayout; unset: onnxruntime's default. */
      webgpuLayout: e.FQ_WEBGPU_LAYOUT,
      /** onnx, torch, or auto: torch when FQ_PYTHON's torch sees a CUDA device. */
      backend: e.FQ_BACKEND,
      precision: e.FQ_PRECISION,
      torchCompile: e.FQ_TORCH_COMPILE,
      intraOpThreads: e.FQ_INTRA_OP_THREADS,
      maxBatch: e.FQ_MAX_BATCH,
      batchWaitMs: e.FQ_BATCH_WAIT_MS,
      maxQueue: e.FQ_MAX_QUEUE,
      requestTimeoutMs: e.FQ_REQUEST_TIMEOUT_MS,
      maxBodyBytes: e.FQ_MAX_BODY_BYTES,
      /** Bytes of all request bodies being received or held at once; past it 503 with Retry-After. */
      maxBodyBytesInFlight: e.FQ_MAX_BODY_BYTES_IN_FLIGHT ?? 2 * e.FQ_MAX_BODY_BYTES,
      /** Longest wait for the next bytes of a request body (408 after). */
      bodyIdleTimeoutMs: e.FQ_BODY_IDLE_TIMEOUT_MS,
      /** Longest a streamed response (a ?format=npz archive) waits for the client to read before the connection closes. */
      writeIdleTimeoutMs: e.FQ_WRITE_IDLE_TIMEOUT_MS,
      maxImages: e.FQ_MAX_IMAGES,
      maxInputPixels: e.FQ_MAX_INPUT_PIXELS,
      /** Decoded pixels (width * height) in flight across requests; more waits its turn. */
      maxDecodePixelsInFlight: e.FQ_MAX_DECODE_PIXELS_IN_FLIGHT ?? 2 * e.FQ_MAX_INPUT_PIXELS,
      preprocessThreads: e.FQ_PREPROCESS_THREADS,
      jobConcurrency: e.FQ_JOB_CONCURRENCY,
      jobCancelGraceMs: e.FQ_JOB_CANCEL_GRACE_MS,
      shutdownGraceMs: e.FQ_SHUTDOWN_GRACE_MS,
      logLevel: e.FQ_LOG_LEVEL,
      logFormat: e.FQ_LOG_FORMAT,
    };
  });

export type Config = z.output<typeof configSchema> & {
  /** The Hugging Face environment (HF_ENDPOINT, HF_HOME, HF_TOKEN, HF_HUB_OFFLINE) and torch's cache (TORCH_HOME). */
  hub: HubSettings;
};

/** Reads the configuration; throws one error listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const config: Config = { ...parsed.data, hub: hubSettings(env) };
  const conflicts = [
    // Even a request without augmentation at FQ_MAX_IMAGES could never be admitted.
    config.maxQueue < config.maxImages && `  FQ_MAX_QUEUE (${config.maxQueue}) is smaller than FQ_MAX_IMAGES (${config.maxImages})`,
    // An image at the pixel limit could never be decoded.
    config.maxBodyBytesInFlight < config.maxBodyBytes &&
      `  FQ_MAX_BODY_BYTES_IN_FLIGHT (${config.maxBodyBytesInFlight}) is smaller than FQ_MAX_BODY_BYTES (${config.maxBodyBytes})`,
    config.maxDecodePixelsInFlight < config.maxInputPixels &&
      `  FQ_MAX_DECODE_PIXELS_IN_FLIGHT (${config.maxDecodePixelsInFlight}) is smaller than FQ_MAX_INPUT_PIXELS (${config.maxInputPixels})`,
  ].filter(Boolean);
  if (conflicts.length > 0) throw new Error(`invalid configuration:\n${conflicts.join('\n')}`);
  return config;
}
