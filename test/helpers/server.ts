// Starts a real fqtok server on a free port (shipped default model unless told otherwise).
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const TRAINER_DIR = path.join(ROOT, 'trainer');

export interface TestServer extends RunningServer {
  url: string;
}

export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const config = loadConfig({
    FQ_PORT: '0',
    FQ_HOST: '127.0.0.1',
    FQ_MODELS_DIR: path.join(ROOT, 'models'),
    FQ_DATA_DIR: path.join(ROOT, 'data', 'test'),
    // No download cache of this machine's user leaks in (training weights are found there).
    HF_HOME: path.join(tmpdir(), 'fqtok-test-no-hf-home'),
    TORCH_HOME: path.join(tmpdir(), 'fqtok-test-no-torch-home'),
    FQ_LOG_LEVEL: 'silent',
    FQ_PREPROCESS_THREADS: '1',
    ...env,
  });
  const server = await startServer(config);
  return { ...server, url: `http://127.0.0.1:${server.port}` };
}
