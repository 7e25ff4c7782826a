// Starts `src/main.ts` as a child process on a free port and keeps its log (JSON lines on stderr).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { ROOT } from './server.ts';

export interface ServerProcess {
  url: string;
  pid: number;
  /** Everything the server logged so far, as text. */
  log(): string;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  /** SIGTERM, then SIGKILL if it has not exited within 20 s; resolves when the process has exited. */
  close(): Promise<void>;
}

export async function startServerProcess(env: Record<string, string>, startTimeoutMs = 300_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', FQ_PREPROCESS_THREADS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = once(child, 'exit');
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  const logs = () =>
    log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not listen within ${startTimeoutMs} ms:\n${log}`)), startTimeoutMs);
      child.stderr.on('data', () => {
        const match = /"port":(\d+).*fqtok listening/.exec(log);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${log}`));
      });
    });
    return { url: `http://127.0.0.1:${port}`, pid: child.pid!, log: () => log, logs, close };
  } catch (err) {
    await close();
    throw err;
  }
}
