// The PyTorch backend: one long-lived worker process per model version, restarted with back-off when it dies or hangs.
import { FqError } from '../../errors.ts';
import { logger } from '../../logger.ts';
import type { BackendHealth, BackendInfo, TokenBatch, InferenceBackend } from '../backend.ts';
import type { Manifest } from '../manifest.ts';
import { TorchWorker, WorkerFault, type TorchWorkerOptions, type WorkerReady } from './torch-worker.ts';
import { frameTensors, type WireArray } from './worker-protocol.ts';

export interface TorchBackendOptions {
  python: string;
  /** The CUDA device the worker takes when it runs on CUDA (FQ_CUDA_DEVICE_ID, as the onnx CUDA provider). */
  cudaDeviceId: number;
  precision: string;
  intraOpThreads: number;
  torchCompile: boolean;
  requestTimeoutMs: number;
}

const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
/** Consecutive failed starts after which the version is reported not ready. */
const FAILED_STARTS_NOT_READY = 3;
/** Importing torch and loading a large model can take a while on a busy machine. */
const MIN_START_TIMEOUT_MS = 120_000;

export class TorchBackend implements InferenceBackend {
  private worker: TorchWorker | undefined;
  /** Set while a (re)start is under way; requests wait for it. */
  private starting: Promise<TorchWorker> | undefined;
  private failedStarts = 0;
  private notReadyReason: string | undefined;
  private closed = false;
  private restartTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly manifest: Manifest,
    private readonly workerOptions: TorchWorkerOptions,
    private readonly requestTimeoutMs: number,
    private ready: WorkerReady,
  ) {}

  /** Starts the worker; throws if its first start fails (the caller decides whether to fall back). */
  static async start(modelDir: string, manifest: Manifest, label: string, options: TorchBackendOptions): Promise<TorchBackend> {
    const workerOptions: TorchWorkerOptions = {
      python: options.python,
      modelDir,
      label,
      precision: options.precision,
      threads: options.intraOpThreads,
      cudaDevice: options.cudaDeviceId,
      compile: options.torchCompile,
      startTimeoutMs: Math.max(MIN_START_TIMEOUT_MS, options.requestTimeoutMs),
    };
    const { worker, ready } = await TorchWorker.start(workerOptions);
    const backend = new TorchBackend(manifest, workerOptions, options.requestTimeoutMs, ready);
    backend.adopt(worker);
    logger.info({ model: label, pid: ready.pid, device: ready.device, precision: ready.precision, torch: ready.torch, weights: ready.weights }, 'torch worker ready');
    return backend;
  }

  get executionProvider(): string {
    return this.ready.device;
  }

  get info(): BackendInfo {
    const { device, precision } = this.ready;
    // The worker takes the device it is given or finds (--device auto): it runs where it was asked to.
    return { backend: 'torch', device, precision, requestedDevice: device, pid: this.worker?.pid, pending: this.worker?.pending ?? 0 };
  }

  health(): BackendHealth {
    return this.notReadyReason ? { ready: false, reason: this.notReadyReason } : { ready: true };
  }

  async encode(images: Float32Array, batch: number): Promise<TokenBatch> {
    const frame = await this.call({ op: 'encode', batch }, [images]);
    const tensors = frameTensors(frame);
    const out: TokenBatch = {};
    for (const { name } of this.manifest.codebooks) out[name] = tensors[name] as Int32Array;
    return out;
  }

  async decode(tokens: TokenBatch, batch: number, grid: readonly [number, number], mask: Float32Array): Promise<Uint8Array> {
    const parts = this.manifest.codebooks.map(({ name }) => {
      const grids = tokens[name];
      if (!grids) throw new Error(`no tokens for codebook ${name}`);
      return grids;
    });
    const frame = await this.call({ op: 'decode', batch, grid: [...grid], mask: [...mask] }, parts);
    return frameTensors(frame).image as Uint8Array;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    const worker = this.worker ?? (await this.starting?.catch(() => undefined));
    this.worker = undefined;
    await worker?.close();
  }

  private async call(header: Record<string, unknown>, parts: WireArray[]) {
    const worker = await this.current();
    try {
      return await worker.request(header, parts, this.hangTimeoutMs());
    } catch (err) {
      if (err instanceof WorkerFault) throw this.unavailable(err.message);
      throw err;
    }
  }

  /**
   * The worker's watchdog, not a request deadline (requests have theirs in their scope, and the CLI's
   * have none): a worker silent this long is taken to hang and is killed. A little under the request
   * timeout, so that a request caught by a hung worker is answered 503 (retry) rather than 504.
   */
  private hangTimeoutMs(): number {
    return Math.max(1000, Math.floor(this.requestTimeoutMs * 0.9));
  }

  private async current(): Promise<TorchWorker> {
    if (this.closed) throw this.unavailable('the model is being unloaded');
    if (this.worker) return this.worker;
    if (this.notReadyReason || !this.starting) throw this.unavailable(this.notReadyReason ?? 'the torch worker is restarting');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.unavailable('the torch worker is still restarting')), this.hangTimeoutMs());
    });
    try {
      return await Promise.race([this.starting, deadline]);
    } catch (err) {
      throw err instanceof FqError ? err : this.unavailable((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  private unavailable(reason: string): FqError {
    const retryAfterSeconds = Math.max(1, Math.ceil(this.backoffMs() / 1000));
    return new FqError('unavailable', `model ${this.workerOptions.label} is unavailable: ${reason}`, { retryAfterSeconds });
  }

  private backoffMs(): number {
    return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this.failedStarts);
  }

  private adopt(worker: TorchWorker): void {
    this.worker = worker;
    void worker.exited.then((exit) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.closed) return;
      logger.error({ model: this.workerOptions.label, pid: worker.pid, ...exit, stderr: worker.lastError() }, 'torch worker exited; restarting it');
      this.scheduleStart();
    });
  }

  /** Starts a new worker after the current back-off; failures lengthen it and, repeated, mark the version not ready. */
  private scheduleStart(): void {
    const delay = this.backoffMs();
    this.starting = new Promise<TorchWorker>((resolve, reject) => {
      this.restartTimer = setTimeout(() => {
        if (this.closed) return reject(new Error('closed'));
        TorchWorker.start(this.workerOptions).then(
          ({ worker, ready }) => {
            if (this.closed) {
              void worker.close();
              return reject(new Error('closed'));
            }
            this.ready = ready;
            this.failedStarts = 0;
            this.notReadyReason = undefined;
            this.starting = undefined;
            this.adopt(worker);
            logger.info({ model: this.workerOptions.label, pid: ready.pid }, 'torch worker restarted');
            resolve(worker);
          },
          (err: Error) => {
            this.failedStarts++;
            logger.error({ model: this.workerOptions.label, attempt: this.failedStarts, err: err.message }, 'torch worker failed to start');
            if (this.failedStarts >= FAILED_STARTS_NOT_READY) {
              this.notReadyReason = `the torch worker failed to start ${this.failedStarts} times in a row: ${err.message}`;
            }
            reject(err);
            if (!this.closed) this.scheduleStart();
          },
        );
      }, delay);
    });
    this.starting.catch(() => {}); // waiting requests see the failure; nobody else must
  }
}
