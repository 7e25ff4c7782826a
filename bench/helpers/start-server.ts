// Starts the service (`src/main.ts`) in a child process on a free port, for benchmarks: the load
// generator must not share the server's event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Resolves once the server listens; its log is then drained unread, so logging costs no bench CPU here. */
export async function startServer(env: Record<string, string | undefined>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const match = /"port":(\d+).*fqtok listening/.exec(log);
      if (match) {
        child.stderr!.off('data', onData);
        child.stderr!.resume();
        resolve(Number(match[1]));
      }
    };
    child.stderr!.on('data', onData);
    child.on('exit', () => reject(new Error(`server exited:\n${log}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}
