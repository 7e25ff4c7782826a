// Every setting of fqtok, read from FQ_* environment variables and validated once at start-up.
import path from 'node:path';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

const executionProvider = z.enum(['cpu', 'cuda', 'webgpu']);
export type ExecutionProviderName = z.infer<typeof executionProvider>;

const configSchema = z.object({
  FQ_HOST: z.string().default('0.0.0.0'),
  FQ_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  FQ_MODELS_DIR: z.string().default('./models'),
  FQ_DEFAULT_MODEL: z.string().optional(),
  FQ_DATA_DIR: z.string().default('./data'),
  FQ_DATASETS_DIR: z.string().optional(),
  FQ_WEIGHTS_DIR: z.string().optional(),
  FQ_ADMIN_TOKEN: z.string().min(16, 'FQ_ADMIN_TOKEN must be at least 16 characters').optional(),
  FQ_PYTHON: z.string().default('/usr/bin/python3'),
  FQ_EXECUTION_PROVIDERS: z
    .string()
    .default('cpu')
    .transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean))
    .pipe(z.array(executionProvider).min(1)),
  FQ_INTRA_OP_THREADS: nonNegativeInt.default(0), // 0: onnxruntime picks (one per core)
  FQ_MAX_BATCH: positiveInt.default(8),
  FQ_BATCH_WAIT_MS: nonNegativeInt.default(2),
  FQ_MAX_QUEUE: positiveInt.default(256), // image views admitted (being prepared or waiting) per model and operation
  FQ_REQUEST_TIMEOUT_MS: positiveInt.default(60_000),
  FQ_MAX_BODY_BYTES: positiveInt.default(64 * 1024 * 1024),
  FQ_MAX_IMAGES: positiveInt.default(64), // per request
  FQ_MAX_INPUT_PIXELS: positiveInt.default(64_000_000), // per image; refused before decoding
  FQ_MAX_DECODE_PIXELS_IN_FLIGHT: positiveInt.optional(), // all images being decoded at once; default 2 x FQ_MAX_INPUT_PIXELS
  FQ_PREPROCESS_THREADS: nonNegativeInt.default(0), // 0: one per core
  FQ_JOB_CONCURRENCY: positiveInt.default(1),
  FQ_JOB_CANCEL_GRACE_MS: positiveInt.default(15_000),
  FQ_SHUTDOWN_GRACE_MS: positiveInt.default(30_000),
  FQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  host: string;
  port: number;
  modelsDir: string;
  defaultModel?: string;
  dataDir: string;
  datasetsDir: string;
  /** LPIPS/VGG16 and teacher weights for fine-tuning (never downloaded). */
  weightsDir: string;
  adminToken?: string;
  python: string;
  executionProviders: ExecutionProviderName[];
  intraOpThreads: number;
  maxBatch: number;
  batchWaitMs: number;
  maxQueue: number;
  requestTimeoutMs: number;
  maxBodyBytes: number;
  maxImages: number;
  maxInputPixels: number;
  /** Decoded pixels (width * height) in flight across requests; more waits its turn. */
  maxDecodePixelsInFlight: number;
  preprocessThreads: number;
  jobConcurrency: number;
  jobCancelGraceMs: number;
  shutdownGraceMs: number;
  logLevel: string;
}

/** Reads the configuration; throws one error listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const maxDecodePixelsInFlight = e.FQ_MAX_DECODE_PIXELS_IN_FLIGHT ?? 2 * e.FQ_MAX_INPUT_PIXELS;
  const conflicts = [
    // Even a request without augmentation at FQ_MAX_IMAGES could never be admitted.
    e.FQ_MAX_QUEUE < e.FQ_MAX_IMAGES && `  FQ_MAX_QUEUE (${e.FQ_MAX_QUEUE}) is smaller than FQ_MAX_IMAGES (${e.FQ_MAX_IMAGES})`,
    // An image at the pixel limit could never be decoded.
    maxDecodePixelsInFlight < e.FQ_MAX_INPUT_PIXELS &&
      `  FQ_MAX_DECODE_PIXELS_IN_FLIGHT (${maxDecodePixelsInFlight}) is smaller than FQ_MAX_INPUT_PIXELS (${e.FQ_MAX_INPUT_PIXELS})`,
  ].filter(Boolean);
  if (conflicts.length > 0) throw new Error(`invalid configuration:\n${conflicts.join('\n')}`);
  const dataDir = path.resolve(e.FQ_DATA_DIR);
  return {
    host: e.FQ_HOST,
    port: e.FQ_PORT,
    modelsDir: path.resolve(e.FQ_MODELS_DIR),
    defaultModel: e.FQ_DEFAULT_MODEL,
    dataDir,
    datasetsDir: path.resolve(e.FQ_DATASETS_DIR ?? path.join(dataDir, 'datasets')),
    weightsDir: path.resolve(e.FQ_WEIGHTS_DIR ?? path.join(dataDir, 'weights')),
    adminToken: e.FQ_ADMIN_TOKEN,
    python: e.FQ_PYTHON,
    executionProviders: e.FQ_EXECUTION_PROVIDERS,
    intraOpThreads: e.FQ_INTRA_OP_THREADS,
    maxBatch: e.FQ_MAX_BATCH,
    batchWaitMs: e.FQ_BATCH_WAIT_MS,
    maxQueue: e.FQ_MAX_QUEUE,
    requestTimeoutMs: e.FQ_REQUEST_TIMEOUT_MS,
    maxBodyBytes: e.FQ_MAX_BODY_BYTES,
    maxImages: e.FQ_MAX_IMAGES,
    maxInputPixels: e.FQ_MAX_INPUT_PIXELS,
    maxDecodePixelsInFlight,
    preprocessThreads: e.FQ_PREPROCESS_THREADS,
    jobConcurrency: e.FQ_JOB_CONCURRENCY,
    jobCancelGraceMs: e.FQ_JOB_CANCEL_GRACE_MS,
    shutdownGraceMs: e.FQ_SHUTDOWN_GRACE_MS,
    logLevel: e.FQ_LOG_LEVEL,
  };
}
