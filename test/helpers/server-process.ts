// Starts `src/main.ts` as a child process on a free port and keeps its log lines (JSON on stderr).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './server.ts';

export interface ServerProcess {
  url: string;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  /** SIGTERM, then SIGKILL after 10 s; resolves when the process has exited. */
  stop(): Promise<void>;
}

export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const logs = () =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server not listening within 60 s:\n${text}`)), 60_000);
      child.stderr.on('data', () => {
        const match = /"port":(\d+).*fqtok listening/.exec(text);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      void exited.then(() => reject(new Error(`server exited early:\n${text}`)));
    });
    return { url: `http://127.0.0.1:${port}`, logs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
