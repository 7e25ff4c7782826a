// Which share of a bulk job this process takes, and which GPU it uses, from `--shard i/n` or the launcher's environment.
//
// fqtok brings no scheduler: it reads what torchrun, Slurm or a Kubernetes Indexed Job already set.

export type ShareSource = 'flag' | 'torchrun' | 'slurm' | 'slurm-array' | 'kubernetes' | 'single';

export interface WorkShare {
  /** This worker, 0-based. */
  index: number;
  /** Workers in all. */
  count: number;
  source: ShareSource;
}

/** The variable a Kubernetes Indexed Job sets itself to the Job's `completions` (Kubernetes does not expose it). */
export const KUBERNETES_COUNT_VARIABLE = 'FQ_SHARD_COUNT';

export class ShareError extends Error {}

function whole(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new ShareError(`${name}=${raw} is not a whole number`);
  return Number(raw.trim());
}

function checked(index: number, count: number, source: ShareSource, what: string): WorkShare {
  if (count < 1) throw new ShareError(`${what}: the worker count must be at least 1`);
  if (index >= count) throw new ShareError(`${what}: worker ${index} of ${count} does not exist (workers are numbered 0 to ${count - 1})`);
  return { index, count, source };
}

/** `--shard i/n`. */
export function parseShardFlag(value: string): WorkShare {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  if (!m) throw new ShareError(`--shard must be i/n (this worker / workers in all, e.g. 0/8), got '${value}'`);
  return checked(Number(m[1]), Number(m[2]), 'flag', `--shard ${value}`);
}

/**
 * This worker's share: `--shard` when given, else the first launcher whose variables are set, in the
 * order torchrun (RANK, WORLD_SIZE: its ranks are global even inside a Slurm job), Slurm (SLURM_PROCID
 * and SLURM_NTASKS, times the array's tasks when in an array), a Slurm array alone
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT), Kubernetes
 * (JOB_COMPLETION_INDEX, FQ_SHARD_COUNT); else the whole job (0/1).
 */
export function workShare(env: NodeJS.ProcessEnv, flag?: string): WorkShare {
  if (flag !== undefined) return parseShardFlag(flag);
  const rank = whole(env, 'RANK');
  const worldSize = whole(env, 'WORLD_SIZE');
  if (rank !== undefined && worldSize !== undefined) return checked(rank, worldSize, 'torchrun', `RANK=${rank} WORLD_SIZE=${worldSize}`);

  const arrayId = whole(env, 'SLURM_ARRAY_TASK_ID');
  const array =
    arrayId === undefined
      ? undefined
      : (() => {
          const min = whole(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
          const count = whole(env, 'SLURM_ARRAY_TASK_COUNT');
          const step = whole(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
          if (count === undefined) throw new ShareError('SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not');
          // With a step or a list (--array=0-15:2, --array=1,5,9) the task ids are not 0..count-1.
          if (step !== 1 || (whole(env, 'SLURM_ARRAY_TASK_MAX') ?? min + count - 1) !== min + count - 1) {
            throw new ShareError(`a Slurm array of consecutive task ids is needed (e.g. --array=0-${count - 1}); use --shard i/n for others`);
          }
          return { index: arrayId - min, count };
        })();
  const procId = whole(env, 'SLURM_PROCID');
  const tasks = whole(env, 'SLURM_NTASKS');
  if (procId !== undefined && tasks !== undefined && tasks > 1) {
    // Several tasks per array element (or one job step of several tasks): number them all in one row.
    const outer = array ?? { index: 0, count: 1 };
    return checked(outer.index * tasks + procId, outer.count * tasks, 'slurm', `SLURM_PROCID=${procId} SLURM_NTASKS=${tasks}`);
  }
  if (array) return checked(array.index, array.count, 'slurm-array', `SLURM_ARRAY_TASK_ID=${arrayId}`);

  const completion = whole(env, 'JOB_COMPLETION_INDEX');
  if (completion !== undefined) {
    const count = whole(env, KUBERNETES_COUNT_VARIABLE);
    if (count === undefined) {
      throw new ShareError(`JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): set ${KUBERNETES_COUNT_VARIABLE} to the Job's completions`);
    }
    return checked(completion, count, 'kubernetes', `JOB_COMPLETION_INDEX=${completion} ${KUBERNETES_COUNT_VARIABLE}=${count}`);
  }
  return { index: 0, count: 1, source: 'single' };
}

export interface DeviceChoice {
  /** The CUDA device index this worker uses (the onnx CUDA provider's device id, the torch worker's cuda:N). */
  cudaDevice: number;
  /** Where it came from. */
  source: 'FQ_CUDA_DEVICE_ID' | 'LOCAL_RANK' | 'SLURM_LOCALID' | 'default';
}

/**
 * The GPU of this worker: FQ_CUDA_DEVICE_ID when set; else its local rank (torchrun's LOCAL_RANK, Slurm's
 * SLURM_LOCALID) among the devices it can see: modulo the length of CUDA_VISIBLE_DEVICES when that is set
 * (Slurm's --gpus-per-task leaves each task one visible device, which is device 0 to it); else device 0.
 */
export function workerDevice(env: NodeJS.ProcessEnv): DeviceChoice {
  const explicit = whole(env, 'FQ_CUDA_DEVICE_ID');
  if (explicit !== undefined) return { cudaDevice: explicit, source: 'FQ_CUDA_DEVICE_ID' };
  const torchrun = whole(env, 'LOCAL_RANK');
  const slurm = whole(env, 'SLURM_LOCALID');
  const localRank = torchrun ?? slurm;
  if (localRank === undefined) return { cudaDevice: 0, source: 'default' };
  const visible = (env.CUDA_VISIBLE_DEVICES ?? '').split(',').filter((d) => d.trim() !== '').length;
  return { cudaDevice: visible > 0 ? localRank % visible : localRank, source: torchrun !== undefined ? 'LOCAL_RANK' : 'SLURM_LOCALID' };
}

/** Whether unit `k` (in the deterministic order of all units) belongs to `share`: round robin, so every worker gets a mix. */
export function isMine(k: number, share: WorkShare): boolean {
  return k % share.count === share.index;
}
