// Starts a real fqtok server in this process on a free port (shipped default model unless told otherwise),
// with a data folder of its own that close() removes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { ROOT } from './paths.ts';

export { ROOT, TRAINER_DIR } from './paths.ts';


export interface TestServer extends RunningServer {
  url: string;
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'fqtok-test-server-'));
  const removeScratch = () => rmSync(scratch, { recursive: true, force: true });
  try {
    const config = loadConfig({
      FQ_PORT: '0',
      FQ_HOST: '127.0.0.1',
      FQ_MODELS_DIR: path.join(ROOT, 'models'),
      FQ_DATA_DIR: scratch,
      FQ_LOG_LEVEL: 'silent',
      FQ_PREPROCESS_THREADS: '1',
      ...env,
    });
    const server = await startServer(config);
    const close = async () => {
      await server.close();
      removeScratch();
    };
    return { ...server, close, url: `http://127.0.0.1:${server.port}` };
  } catch (err) {
    removeScratch();
    throw err;
  }
}
