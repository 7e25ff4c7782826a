// Python children that cannot outlive this process, even after `kill -9`: the launcher, their environment, signalling their group.
import path from 'node:path';

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

/** Variables this process set for itself that Python children must not inherit (see keepFromPythonChildren). */
const ownVariables = new Set<string>(['FQ_ADMIN_TOKEN']);

/** A variable this process set for its own sake (e.g. NVIDIA_TF32_OVERRIDE for onnxruntime's CUDA EP), not its children's. */
export function keepFromPythonChildren(variable: string): void {
  ownVariables.add(variable);
}

/** The environment for a Python child: unbuffered, without the service's secret or what the service set for itself. */
export function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: '1' };
  for (const variable of ownVariables) delete env[variable];
  return env;
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
