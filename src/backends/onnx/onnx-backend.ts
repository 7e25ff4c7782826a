// The onnxruntime-node backend: the encoder and the decoder session of one model version, each in a
// worker thread of its own (onnxruntime-node's run() would otherwise block the event loop).
import path from 'node:path';
import { Piscina } from 'piscina';
import { logger } from '../../logger.ts';
import { workerExecArgv } from '../../worker-exec-argv.ts';
import { chooseExecutionProvider, serialisedCreation, type ExecutionProviderSettings, type ProviderEntry } from './execution-providers.ts';
import type { Manifest } from '../manifest.ts';
import type { BackendInfo, TokenBatch, InferenceBackend } from '../backend.ts';
import type { RunResult, RunTask, SessionConfig, SessionDescription } from './ort-session-worker.ts';

export type OnnxBackendOptions = ExecutionProviderSettings;

const WORKER_URL = new URL('./ort-session-worker.ts', import.meta.url);

interface SessionThread {
  pool: Piscina<RunTask, RunResult>;
  session: SessionConfig;
  description: SessionDescription;
}

/** One session in one thread; the micro-batcher already runs one batch at a time per session. */
async function sessionThread(file: string, provider: ProviderEntry, options: OnnxBackendOptions): Promise<SessionThread> {
  const session: SessionConfig = { file, provider, intraOpThreads: options.intraOpThreads };
  const pool = new Piscina<RunTask, RunResult>({
    filename: WORKER_URL.href,
    minThreads: 1,
    maxThreads: 1,
    idleTimeout: Number.POSITIVE_INFINITY, // the session is the thread's state: keep it
    execArgv: workerExecArgv(),
  });
  try {
    const description = (await pool.run(session as never, { name: 'describe' })) as unknown as SessionDescription;
    for (const f of description.fallbacks) logger.error({ file, provider: f.provider, reason: f.reason }, 'execution provider passed its check but failed here; running on CPU');
    return { pool, session, description };
  } catch (err) {
    await pool.close();
    throw err;
  }
}

function toInt64(data: Int32Array): BigInt64Array {
  const out = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]!);
  return out;
}

export class OnnxBackend implements InferenceBackend {
  private constructor(
    private readonly manifest: Manifest,
    private readonly encoder: SessionThread,
    private readonly decoder: SessionThread,
    readonly executionProvider: string,
    private readonly requested: string,
    private readonly fallback: string | undefined,
  ) {}

  /** `label` names the model version in log lines. */
  static async load(modelDir: string, manifest: Manifest, options: OnnxBackendOptions, label = modelDir): Promise<OnnxBackend> {
    const chosen = await chooseExecutionProvider(label, modelDir, manifest, options);
    // One session creation at a time in the whole process (see serialisedCreation).
    const encoder = await serialisedCreation(() => sessionThread(path.join(modelDir, manifest.encoder.file), chosen.entry, options));
    let decoder: SessionThread;
    try {
      decoder = await serialisedCreation(() => sessionThread(path.join(modelDir, manifest.decoder.file), chosen.entry, options));
    } catch (err) {
      await encoder.pool.close();
      throw err;
    }
    const [e, d] = [encoder.description.provider, decoder.description.provider];
    const late = [...encoder.description.fallbacks, ...decoder.description.fallbacks].map((f) => `${f.provider}: ${f.reason}`);
    const fallback = [chosen.fallback, ...late].filter(Boolean).join('; ') || undefined;
    return new OnnxBackend(manifest, encoder, decoder, e === d ? e : `encoder:${e},decoder:${d}`, chosen.requested, fallback);
  }

  get info(): BackendInfo {
    return {
      backend: 'onnx',
      device: this.executionProvider,
      precision: 'fp32',
      requestedDevice: this.requested,
      ...(this.fallback ? { fallback: this.fallback } : {}),
    };
  }

  async encode(images: Float32Array, batch: number): Promise<TokenBatch> {
    const size = this.manifest.image_size;
    // A copy of our own to hand over: the caller's array may be a view into a larger buffer.
    const own = new Float32Array(images);
    const result = await this.encoder.pool.run(
      { session: this.encoder.session, feeds: { [this.manifest.encoder.input]: { type: 'float32', data: own, dims: [batch, 3, size, size] } }, outputs: this.manifest.encoder.outputs, as: 'int32' },
      { transferList: [own.buffer] },
    );
    return result as TokenBatch;
  }

  async decode(tokens: TokenBatch, batch: number, grid: readonly [number, number], mask: Float32Array): Promise<Uint8Array> {
    const feeds: RunTask['feeds'] = {};
    for (const name of this.manifest.decoder.inputs) {
      const grids = tokens[name];
      if (!grids) throw new Error(`no tokens for codebook ${name}`);
      feeds[name] = { type: 'int64', data: toInt64(grids), dims: [batch, grid[0], grid[1]] };
    }
    feeds[this.manifest.decoder.mask] = { type: 'float32', data: new Float32Array(mask), dims: [mask.length] };
    const transferList = Object.values(feeds).map((f) => f.data.buffer as ArrayBuffer);
    const result = await this.decoder.pool.run({ session: this.decoder.session, feeds, outputs: [this.manifest.decoder.output], as: 'rgb8' }, { transferList });
    return result[this.manifest.decoder.output] as Uint8Array;
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder.pool.close(), this.decoder.pool.close()]);
  }
}
