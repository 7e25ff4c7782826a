// The one way tests make a model folder: the trainer's real exporter (`python -m fqgan.export`), from a
// seeded random model or from a checkpoint; a hung exporter is killed and fails the caller.
import { spawn } from 'node:child_process';
import { PYTHON } from './python.ts';
import { TRAINER_DIR } from './paths.ts';

export type ExportSource =
  | { preset: string; variant?: 'triple' | 'dual'; seed?: number; imageSize?: number; /** Also write PyTorch's answers for parity tests here. */ fixture?: string }
  | { checkpoint: string };

const TIMEOUT_MS = 170_000;

export function exportModel(out: string, source: ExportSource): Promise<void> {
  const args = ['-m', 'fqgan.export', '--out', out];
  if ('checkpoint' in source) args.push('--checkpoint', source.checkpoint);
  else {
    args.push('--random', '--preset', source.preset, '--seed', String(source.seed ?? 0));
    if (source.variant) args.push('--variant', source.variant);
    if (source.imageSize !== undefined) args.push('--image-size', String(source.imageSize));
    if (source.fixture) args.push('--fixture', source.fixture);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: TRAINER_DIR, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`fqgan.export exited ${code ?? signal}:\n${stderr}`));
    });
  });
}
