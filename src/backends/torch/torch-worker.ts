// One `python -m fqgan.serve_worker` process: start-up handshake, framed requests with deadlines, exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { logger } from '../../logger.ts';
import { childEnv, launcherArgs, signalGroup, TRAINER_DIR } from '../../python-launcher.ts';
import { encodeFrame, FrameReader, type Frame, type FrameHeader, type WireArray } from './worker-protocol.ts';

export interface TorchWorkerOptions {
  python: string;
  modelDir: string;
  label: string;
  precision: string;
  threads: number;
  /** CUDA device index, used when the worker finds CUDA. */
  cudaDevice: number;
  compile: boolean;
  startTimeoutMs: number;
}

/** What the worker says about itself once its model is loaded. */
export interface WorkerReady {
  pid: number;
  device: string;
  precision: string;
  torch: string;
  weights: string;
  compiled: boolean;
}

/** The worker died, hung or could not start; callers may retry once it is back. */
export class WorkerFault extends Error {}

const STDERR_TAIL_CHARS = 4000;
const CLOSE_GRACE_MS = 5000;

interface Pending {
  resolve: (frame: Frame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class TorchWorker {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly waiting = new Map<number, Pending>();
  private readonly reader = new FrameReader();
  private nextId = 1;
  private fault: WorkerFault | undefined;
  private stderrTail = '';
  private onReady: ((frame: Frame) => void) | undefined;

  private constructor(private readonly options: TorchWorkerOptions) {
    const args = ['--model-dir', options.modelDir, '--precision', options.precision, '--threads', String(options.threads), '--cuda-device', String(options.cudaDevice)];
    if (options.compile) args.push('--compile');
    // detached: a Ctrl-C meant for the service does not kill its workers mid-batch; the service stops them.
    this.child = spawn(options.python, launcherArgs('fqgan.serve_worker', args), {
      cwd: TRAINER_DIR,
      env: childEnv(),
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdin!.on('error', () => {}); // EPIPE after the worker died: the exit handler reports it
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderrTail = (this.stderrTail + line + '\n').slice(-STDERR_TAIL_CHARS);
      logger.debug({ model: options.label, pid: this.child.pid, line }, 'torch worker');
    });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.reader.push(chunk)) this.dispatch(frame);
      } catch (err) {
        this.failAll(new WorkerFault(`torch worker sent an unreadable frame: ${(err as Error).message}`));
        this.kill();
      }
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.stderrTail += `cannot start ${options.python}: ${err.message}\n`;
        this.failAll(new WorkerFault(`cannot start ${options.python}: ${err.message}`));
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        this.failAll(new WorkerFault(`the torch worker exited (${signal ? `signal ${signal}` : `code ${code}`})`));
        resolve({ code, signal });
      });
    });
  }

  /** Starts a worker and waits for its model to load; throws a WorkerFault if it does not. */
  static async start(options: TorchWorkerOptions): Promise<{ worker: TorchWorker; ready: WorkerReady }> {
    const worker = new TorchWorker(options);
    try {
      const frame = await new Promise<Frame>((resolve, reject) => {
        const timer = setTimeout(() => reject(new WorkerFault(`the torch worker did not load its model within ${options.startTimeoutMs} ms`)), options.startTimeoutMs);
        worker.onReady = (f) => {
          clearTimeout(timer);
          resolve(f);
        };
        void worker.exited.then(() => {
          clearTimeout(timer);
          reject(new WorkerFault(`the torch worker exited while starting: ${worker.lastError()}`));
        });
      });
      if (frame.header.op !== 'ready') throw new WorkerFault(`the torch worker could not start: ${String(frame.header.error ?? worker.lastError())}`);
      return { worker, ready: frame.header as unknown as WorkerReady };
    } catch (err) {
      worker.kill();
      await worker.exited;
      throw err;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get pending(): number {
    return this.waiting.size;
  }

  /** The last line of the worker's stderr that says something, for logs and readiness reasons. */
  lastError(): string {
    const lines = this.stderrTail.trim().split('\n').filter(Boolean);
    return lines.at(-1)?.slice(0, 500) ?? 'no output';
  }

  /** Sends one request; a worker that does not answer within `timeoutMs` is taken to hang and is killed. */
  request(header: FrameHeader, parts: WireArray[], timeoutMs: number): Promise<Frame> {
    if (this.fault) return Promise.reject(this.fault);
    const id = this.nextId++;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        logger.error({ model: this.options.label, pid: this.pid, op: header.op, timeoutMs }, 'torch worker did not answer in time; killing it');
        this.failAll(new WorkerFault(`the torch worker did not answer within ${timeoutMs} ms`));
        this.kill();
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      for (const chunk of encodeFrame({ ...header, id }, parts)) this.child.stdin!.write(chunk);
    });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.signal('SIGKILL');
  }

  /** Ends its stdin (the worker finishes the request at hand and exits); SIGKILL after a grace period. */
  async close(): Promise<void> {
    this.child.stdin!.end();
    const timer = setTimeout(() => this.kill(), CLOSE_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  private signal(signal: NodeJS.Signals): void {
    // Its process group: the launcher execs, so this is the worker.
    if (!signalGroup(this.child.pid, signal)) this.child.kill(signal);
  }

  private dispatch(frame: Frame): void {
    if (frame.header.op === 'ready' || frame.header.op === 'failed') {
      this.onReady?.(frame);
      return;
    }
    const pending = this.waiting.get(frame.header.id ?? -1);
    if (!pending) return;
    this.waiting.delete(frame.header.id!);
    clearTimeout(pending.timer);
    if (frame.header.ok) pending.resolve(frame);
    else pending.reject(new Error(`torch worker: ${frame.header.error ?? 'request failed'}`));
  }

  private failAll(fault: WorkerFault): void {
    this.fault ??= fault;
    for (const [id, p] of this.waiting) {
      clearTimeout(p.timer);
      p.reject(this.fault);
      this.waiting.delete(id);
    }
  }
}
