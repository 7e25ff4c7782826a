// `fqtok convert`: runs the trainer's exporter to make a released checkpoint servable.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { TRAINER_DIR } from '../jobs/layout.ts';

/** Runs `python -m fqgan.<module> args` in trainer/, passing its output through; resolves with the exit code. */
export function runTrainerModule(python: string, module: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', `fqgan.${module}`, ...args], { cwd: TRAINER_DIR, stdio: 'inherit' });
    child.on('error', (err) => reject(new Error(`cannot run ${python} (set FQ_PYTHON to an interpreter with torch): ${err.message}`)));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Paths are resolved here because the exporter runs in trainer/. */
export function convertArgs(args: string[]): string[] {
  const pathFlags = new Set(['--checkpoint', '--out', '--fixture']);
  return args.map((a, i) => (i > 0 && pathFlags.has(args[i - 1]!) ? path.resolve(a) : a));
}
