// onnxruntime's CUDA EP at fp32: onnxruntime-node passes only the device id to CUDA, so TF32 (on by
// default in cuBLAS and cuDNN from Ampere on, Hopper included) cannot be switched off through the
// session's options. NVIDIA's own variable switches it off in every NVIDIA library of this process;
// fqtok sets it before the first CUDA session (unless the environment already says), so that the CUDA
// EP gives the CPU's tokens and passes its start-up check. Python children choose their own precision
// (FQ_PRECISION, the trainer's settings), so they get the variable only if it came from outside.
import { keepFromPythonChildren } from '../../python-launcher.ts';

const VARIABLE = 'NVIDIA_TF32_OVERRIDE';

/** Sets NVIDIA_TF32_OVERRIDE=0 for this process, unless it is set already; call before any CUDA session exists. */
export function pinCudaFp32(): void {
  if (process.env[VARIABLE] !== undefined) return;
  process.env[VARIABLE] = '0'; // Node's process.env writes the C environment, which the CUDA libraries read when they load
  keepFromPythonChildren(VARIABLE);
}

/** Whether TF32 is off for this process's NVIDIA libraries (for the check's log line). */
export function cudaTf32Off(): boolean {
  return process.env[VARIABLE] === '0';
}
