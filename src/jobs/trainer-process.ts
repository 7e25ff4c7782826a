// Runs `python -m fqgan.train` as a child that cannot outlive the service, and streams its stdout lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { childEnv, launcherArgs, signalGroup, TRAINER_DIR } from '../python-launcher.ts';

// Started through the shared launcher so the trainer dies with the service even on `kill -9`; on
// SIGTERM the trainer saves a checkpoint and stops, which is what recovery resumes from.

const STDERR_TAIL_BYTES = 8 * 1024;

export interface TrainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface TrainerProcessOptions {
  python: string;
  args: string[];
  /** Every stderr byte is appended here; the last few KB are kept in memory for the job's error. */
  stderrFile?: string;
  onLine?: (line: string) => void;
  /**
   * Writing `stderrFile` failed (a full or read-only disk): the log stops there, the tail is still kept.
   * Without a handler such an error would end the whole service (an 'error' event nobody listens to).
   */
  onStderrFileError?: (err: Error) => void;
}

export class TrainerProcess {
  readonly exited: Promise<TrainerExit>;
  private readonly child: ChildProcess;
  private stderrTailBuffer = '';
  private killTimer: NodeJS.Timeout | undefined;

  constructor(options: TrainerProcessOptions) {
    const env = childEnv(); // the trainer has no business with the service's secret
    // detached: its own process group, so cancel reaches DataLoader workers too and a Ctrl-C of the
    // service's terminal goes to the service, which stops the trainer itself.
    this.child = spawn(options.python, launcherArgs('fqgan.train', options.args), {
      cwd: TRAINER_DIR,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderrFile = options.stderrFile ? createWriteStream(options.stderrFile, { flags: 'a' }) : undefined;
    stderrFile?.on('error', (err) => {
      if (!stderrFile) return; // told once
      stderrFile.destroy();
      stderrFile = undefined;
      options.onStderrFileError?.(err);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      stderrFile?.write(chunk);
      this.stderrTailBuffer = (this.stderrTailBuffer + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    const lines = createInterface({ input: this.child.stdout! });
    if (options.onLine) lines.on('line', options.onLine);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.stderrTailBuffer += `\ncannot start ${options.python}: ${err.message}`;
        resolve({ code: null, signal: null });
      });
      this.child.once('close', (code, signal) => {
        clearTimeout(this.killTimer);
        stderrFile?.end();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get stderrTail(): string {
    return this.stderrTailBuffer;
  }

  /** SIGTERM to the process group (the trainer checkpoints and stops), SIGKILL after `graceMs`. */
  terminate(graceMs: number): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.killTimer) return;
    signalGroup(this.child.pid, 'SIGTERM');
    this.killTimer = setTimeout(() => signalGroup(this.child.pid, 'SIGKILL'), graceMs);
    this.killTimer.unref();
  }
}

/** Runs the trainer to completion and returns its stdout lines (for `--check` and `--example-spec`). */
export async function runTrainerOnce(python: string, args: string[]): Promise<{ exit: TrainerExit; lines: string[]; stderr: string }> {
  const lines: string[] = [];
  const trainer = new TrainerProcess({ python, args, onLine: (l) => lines.push(l) });
  const exit = await trainer.exited;
  return { exit, lines, stderr: trainer.stderrTail };
}
