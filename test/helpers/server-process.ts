// The one way tests (and benchmarks) start the service as a process of its own (`src/main.ts`): on a free
// port, JSON log lines kept (or drained), a data folder of its own, and always ended by close().
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from './paths.ts';
import { waitFor } from './wait.ts';

export interface ServerProcessOptions {
  /** A process group of its own (as a process manager runs it), so that the group can be signalled. */
  detached?: boolean;
  /** Keep the log for log()/logs()/waitForLog() (default); benchmarks drain it unread. */
  keepLog?: boolean;
  startTimeoutMs?: number;
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  pid: number;
  /** Everything the server logged so far, as text. */
  log(): string;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  /** The first log line (so far or to come) that `match` accepts. */
  waitForLog(what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  exited(): Promise<void>;
  /** SIGTERM (to its group when detached), then SIGKILL if it has not exited within 20 s; resolves when it has exited. */
  close(): Promise<void>;
}

/** `env` is added to this process's environment (an undefined value leaves the variable as it is). */
export async function startServerProcess(env: Record<string, string | undefined> = {}, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const keepLog = options.keepLog ?? true;
  const startTimeoutMs = options.startTimeoutMs ?? 300_000;
  const scratch = env.FQ_DATA_DIR ? undefined : mkdtempSync(path.join(tmpdir(), 'fqtok-server-'));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      FQ_PORT: '0',
      FQ_HOST: '127.0.0.1',
      FQ_LOG_LEVEL: 'info',
      FQ_LOG_FORMAT: 'json', // the port is read from the 'fqtok listening' line
      FQ_PREPROCESS_THREADS: '1',
      ...(scratch ? { FQ_DATA_DIR: scratch } : {}),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: options.detached ?? false,
  });
  let log = '';
  const gone = once(child, 'exit').then(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
  const isGone = () => child.exitCode !== null || child.signalCode !== null;
  const signal = (name: NodeJS.Signals) => {
    try {
      if (options.detached) process.kill(-child.pid!, name);
      else child.kill(name);
    } catch {
      /* already gone */
    }
  };
  const close = async () => {
    if (!isGone()) {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 20_000);
      await gone;
      clearTimeout(timer);
    }
    await gone;
  };
  const logs = () =>
    log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not listen within ${startTimeoutMs} ms:\n${log}`)), startTimeoutMs);
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        const match = /"port":(\d+).*fqtok listening/.exec(log);
        if (!match) return;
        clearTimeout(timer);
        if (!keepLog) {
          child.stderr!.off('data', onData); // logging costs a benchmark's load generator nothing
          child.stderr!.resume();
        }
        resolve(Number(match[1]));
      };
      child.stderr!.on('data', onData);
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`server exited early (code ${code}, signal ${sig}):\n${log}`));
      });
    });
    return {
      url: `http://127.0.0.1:${port}`,
      child,
      pid: child.pid!,
      log: () => log,
      logs,
      waitForLog: (what, match, timeoutMs = 60_000) => waitFor(what, () => logs().find(match), timeoutMs),
      exited: () => gone,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
