// Python children that cannot outlive this process, even after `kill -9`: the launcher, their environment, signalling their group.
import path from 'node:path';
import { withoutCudaFp32Pin } from './backends/onnx/cuda-fp32.ts';

export const TRAINER_DIR = path.resolve(import.meta.dirname, '../trainer');

/**
 * The child asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG survives exec),
 * re-checks that the parent is still there (it may have died before prctl), then becomes the
 * module. Where prctl is missing (not Linux) each caller keeps its own safety net: the trainer's
 * recovery kills the recorded process group, the torch worker exits at the end of its stdin.
 */
const LAUNCHER = [
  'import ctypes, os, signal, sys',
  'parent = int(sys.argv[1])',
  'try:',
  '    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG',
  'except Exception:',
  '    pass',
  'if os.getppid() != parent:',
  '    sys.exit(143)',
  "os.execv(sys.executable, [sys.executable, '-m', sys.argv[2]] + sys.argv[3:])",
].join('\n');

/** Arguments for the Python interpreter: run `module` with `args` under the launcher. */
export function launcherArgs(module: string, args: string[]): string[] {
  return ['-c', LAUNCHER, String(process.pid), module, ...args];
}

/** The environment for a Python child: unbuffered, without the service's secret, and with its own say on TF32. */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
  delete env.FQ_ADMIN_TOKEN;
  return withoutCudaFp32Pin(env);
}

/** Signals a whole process group; a group that is already gone is fine. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}
