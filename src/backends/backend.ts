// The inference backend interface: what a served model needs from an inference engine (onnxruntime, torch), batch in, batch out.

/** Token grids of a batch: one Int32Array [batch*h*w] per codebook name. */
export type TokenBatch = Record<string, Int32Array>;

/** Which engine runs a model version, where, and at which precision (shown by /models). */
export interface BackendInfo {
  backend: 'onnx' | 'torch';
  device: string;
  precision: string;
  /** Where the configuration asked it to run (the first execution provider); `device` is where it does. */
  requestedDevice: string;
  /** Why it does not run where asked, when it does not. */
  fallback?: string;
  /** The worker process of an out-of-process backend, and how many requests it is working on. */
  pid?: number;
  pending?: number;
}

export interface BackendHealth {
  ready: boolean;
  reason?: string;
}

export interface InferenceBackend {
  /** The execution provider the sessions actually run on (after any fallback). */
  readonly executionProvider: string;
  readonly info: BackendInfo;
  /** Not ready when it cannot serve (e.g. a worker that keeps failing to start); ready when absent. */
  health?(): BackendHealth;
  /** images: float32 NCHW in [-1,1], [batch,3,S,S]. */
  encode(images: Float32Array, batch: number): Promise<TokenBatch>;
  /**
   * mask: 1 = use the codebook, 0 = zero its vectors. Returns the images as 8-bit RGB, HWC, one after
   * another, mapped from the decoder's [-1,1] as the reference does (see tensor-to-image.ts).
   */
  decode(tokens: TokenBatch, batch: number, grid: readonly [number, number], mask: Float32Array): Promise<Uint8Array>;
  close(): Promise<void>;
}
