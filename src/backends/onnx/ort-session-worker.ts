// Worker-thread side of one onnxruntime session: onnxruntime-node's run() blocks the thread that
// calls it for the whole inference, so each session lives in a thread of its own.
import * as ort from 'onnxruntime-node';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { chwToRgb8 } from '../../imaging/tensor-to-image.ts';
import type { ProviderEntry } from './execution-providers.ts';

export interface SessionConfig {
  file: string;
  /** The provider chosen (and checked) by execution-providers.ts. */
  provider: ProviderEntry;
  intraOpThreads: number;
}

export interface WireTensor {
  type: 'float32' | 'int64';
  data: Float32Array | BigInt64Array;
  dims: number[];
}

export interface SessionDescription {
  provider: string;
  /** Why the chosen provider was passed over, for the log. */
  fallbacks: { provider: string; reason: string }[];
}

export interface RunTask {
  session: SessionConfig;
  feeds: Record<string, WireTensor>;
  /** Outputs to return; `rgb8` converts image outputs [B,3,H,W] to 8-bit HWC here, off the event loop. */
  outputs: string[];
  as: 'int32' | 'rgb8';
}

export type RunResult = Record<string, Int32Array | Uint8Array>;

function sessionOptions(config: SessionConfig, providers: ProviderEntry[]): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: providers as ort.InferenceSession.ExecutionProviderConfig[],
    graphOptimizationLevel: 'all',
    ...(config.intraOpThreads > 0 ? { intraOpNumThreads: config.intraOpThreads } : {}),
  };
}

/** The chosen provider (with CPU for the nodes it leaves, e.g. shape ops), or CPU alone if it fails here after all. */
async function createSession(config: SessionConfig): Promise<{ session: ort.InferenceSession; description: SessionDescription }> {
  const fallbacks: SessionDescription['fallbacks'] = [];
  if (config.provider !== 'cpu') {
    const provider = config.provider.name;
    try {
      const session = await ort.InferenceSession.create(config.file, sessionOptions(config, [config.provider, 'cpu']));
      return { session, description: { provider, fallbacks } };
    } catch (err) {
      fallbacks.push({ provider, reason: (err as Error).message.split('\n')[0]!.slice(0, 300) });
    }
  }
  const session = await ort.InferenceSession.create(config.file, sessionOptions(config, ['cpu']));
  return { session, description: { provider: 'cpu', fallbacks } };
}

// The thread's one session, made by the first task (tasks carry the config rather than piscina's
// workerData, which keeps tsx's loader out of the thread).
let loaded: ReturnType<typeof createSession> | undefined;

function sessionFor(config: SessionConfig) {
  return (loaded ??= createSession(config));
}

export async function describe(config: SessionConfig): Promise<SessionDescription> {
  return (await sessionFor(config)).description;
}

function convert(tensor: ort.Tensor, as: RunTask['as']): Int32Array | Uint8Array {
  if (as === 'rgb8') {
    const [batch, , height, width] = tensor.dims as number[];
    const data = tensor.data as Float32Array;
    const per = 3 * height! * width!;
    const rgb = new Uint8Array(batch! * per);
    for (let n = 0; n < batch!; n++) rgb.set(chwToRgb8(data.subarray(n * per, (n + 1) * per), height!, width!), n * per);
    return rgb;
  }
  const data = tensor.data as BigInt64Array;
  const ints = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) ints[i] = Number(data[i]);
  return ints;
}

export default async function runSession(task: RunTask) {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(task.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  const { session } = await sessionFor(task.session);
  const outputs = await session.run(feeds);
  const result: RunResult = {};
  for (const name of task.outputs) {
    const tensor = outputs[name];
    if (!tensor) throw new Error(`${task.session.file} produced no output named ${name}`);
    result[name] = convert(tensor, task.as);
  }
  return move({ [transferableSymbol]: Object.values(result).map((a) => a.buffer), [valueSymbol]: result });
}
