// The onnxruntime-node backend: one encoder and one decoder session per model version.
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ExecutionProviderName } from '../config.ts';
import { logger } from '../logger.ts';
import type { Manifest } from './manifest.ts';
import type { TokenBatch, TokenizerBackend } from './backend.ts';

export interface OnnxBackendOptions {
  executionProviders: ExecutionProviderName[];
  intraOpThreads: number;
}

function sessionOptions(providers: string[], intraOpThreads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    // Idle pool threads sleep instead of spinning: the event loop and the preprocessing workers share these cores.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    ...(intraOpThreads > 0 ? { intraOpNumThreads: intraOpThreads } : {}),
  };
}

/** Tries the configured providers in order, then CPU; says in the log which one runs. */
async function createSession(file: string, options: OnnxBackendOptions): Promise<{ session: ort.InferenceSession; provider: string }> {
  const wanted = options.executionProviders.filter((p) => p !== 'cpu');
  for (const provider of wanted) {
    try {
      const session = await ort.InferenceSession.create(file, sessionOptions([provider, 'cpu'], options.intraOpThreads));
      return { session, provider };
    } catch (err) {
      logger.warn({ file, provider, err: (err as Error).message }, 'execution provider unavailable, trying the next');
    }
  }
  const session = await ort.InferenceSession.create(file, sessionOptions(['cpu'], options.intraOpThreads));
  return { session, provider: 'cpu' };
}

function toInt32(data: BigInt64Array): Int32Array {
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

function toInt64(data: Int32Array): BigInt64Array {
  const out = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]!);
  return out;
}

export class OnnxBackend implements TokenizerBackend {
  private constructor(
    private readonly manifest: Manifest,
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    readonly executionProvider: string,
  ) {}

  static async load(modelDir: string, manifest: Manifest, options: OnnxBackendOptions): Promise<OnnxBackend> {
    const encoder = await createSession(path.join(modelDir, manifest.encoder.file), options);
    const decoder = await createSession(path.join(modelDir, manifest.decoder.file), options);
    return new OnnxBackend(manifest, encoder.session, decoder.session, encoder.provider);
  }

  async encode(images: Float32Array, batch: number): Promise<TokenBatch> {
    const size = this.manifest.image_size;
    const input = new ort.Tensor('float32', images, [batch, 3, size, size]);
    const outputs = await this.encoder.run({ [this.manifest.encoder.input]: input });
    const result: TokenBatch = {};
    for (const name of this.manifest.encoder.outputs) {
      const tensor = outputs[name];
      if (!tensor) throw new Error(`encoder produced no output named ${name}`);
      result[name] = tensor.type === 'int64' ? toInt32(tensor.data as BigInt64Array) : Int32Array.from(tensor.data as ArrayLike<number>);
    }
    return result;
  }

  async decode(tokens: TokenBatch, batch: number, grid: readonly [number, number], mask: Float32Array): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.manifest.decoder.inputs) {
      const grids = tokens[name];
      if (!grids) throw new Error(`no tokens for codebook ${name}`);
      feeds[name] = new ort.Tensor('int64', toInt64(grids), [batch, grid[0], grid[1]]);
    }
    feeds[this.manifest.decoder.mask] = new ort.Tensor('float32', mask, [mask.length]);
    const outputs = await this.decoder.run(feeds);
    const image = outputs[this.manifest.decoder.output];
    if (!image) throw new Error(`decoder produced no output named ${this.manifest.decoder.output}`);
    return image.data as Float32Array;
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder.release(), this.decoder.release()]);
  }
}
