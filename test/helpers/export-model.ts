// Exports a seeded random model with the trainer's real exporter (`python -m fqgan.export --random`).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './server.ts';

const PYTHON = process.env.FQ_PYTHON ?? '/usr/bin/python3';

export interface RandomModelOptions {
  preset: string;
  imageSize?: number;
  seed?: number;
}

export function exportRandomModel(out: string, options: RandomModelOptions): Promise<void> {
  const args = ['-m', 'fqgan.export', '--random', '--preset', options.preset, '--seed', String(options.seed ?? 0), '--out', out];
  if (options.imageSize !== undefined) args.push('--image-size', String(options.imageSize));
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: path.join(ROOT, 'trainer'), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 170_000); // a hung exporter fails the hook, never outlives it
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`fqgan.export exited ${code ?? signal}:\n${stderr}`));
    });
  });
}
