// The backend interface: what the tokenizer needs from an inference engine, batch in, batch out.

/** Token grids of a batch: one Int32Array [batch*h*w] per codebook name. */
export type TokenBatch = Record<string, Int32Array>;

export interface TokenizerBackend {
  /** The execution provider the sessions actually run on (after any fallback). */
  readonly executionProvider: string;
  /** images: float32 NCHW in [-1,1], [batch,3,S,S]. */
  encode(images: Float32Array, batch: number): Promise<TokenBatch>;
  /** mask: 1 = use the codebook, 0 = zero its vectors. Returns float32 NCHW, not clamped. */
  decode(tokens: TokenBatch, batch: number, grid: readonly [number, number], mask: Float32Array): Promise<Float32Array>;
  close(): Promise<void>;
}
