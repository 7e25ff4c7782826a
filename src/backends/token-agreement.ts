// When another runtime agrees with onnxruntime on the CPU about a model's tokens: the one definition of a
// near-tie, the fixed input, and the comparison that both start-up checks use (an execution provider in
// onnx/provider-check.ts, the torch worker in backend-factory.ts).
//
// A token is a near-tie when the reference (onnxruntime's CPU EP) itself picks another code for the fixed
// input moved by +e*n or -e*n (n a fixed noise in [-1, 1], e = NEAR_TIE_INPUT_EPSILON): its best code
// then wins by so little that float rounding alone may flip it. The two moves are opposite, so any token
// whose winning margin the noise can close is caught by one of them. Every other token is clear, and must
// be the same in the tested runtime (up to an allowed share, for reduced precision).

/** How far (in the encoder's [-1, 1] input units) the input is moved to find near-ties. */
export const NEAR_TIE_INPUT_EPSILON = 2e-3;

/** Token grids of a batch, one array per codebook (int32 or int64 values). */
export type TokenGrids = Record<string, ArrayLike<number | bigint>>;

export interface CodebookAgreement {
  codebook: string;
  positions: number;
  /** Near-ties: tokens the reference itself changes under the input moves. */
  unclear: number;
  /** Clear tokens that differ: what the checks limit. */
  mismatches_clear: number;
  mismatches_all: number;
}

/** Deterministic pseudo-random numbers in [0,1) (mulberry32), so every check sees the same input. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fixed input, float32 NCHW in [-1, 1]: smooth colour fields with texture, closer to photographs than white noise, so codes vary spatially. */
export function checkImages(count: number, size: number): Float32Array {
  const next = random(1234);
  const out = new Float32Array(count * 3 * size * size);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      const fx = 1 + 5 * next();
      const fy = 1 + 5 * next();
      const phase = 6.28 * next();
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const v = 0.7 * Math.sin((fx * x) / size * 6.28 + phase) * Math.cos((fy * y) / size * 6.28) + 0.3 * (2 * next() - 1);
          out[((n * 3 + c) * size + y) * size + x] = v;
        }
      }
    }
  }
  return out;
}

/** The input moved by +e*n and by -e*n: the reference's tokens for these mark the near-ties. */
export function nearbyInputs(images: Float32Array): Float32Array[] {
  const next = random(1);
  const noise = images.map(() => NEAR_TIE_INPUT_EPSILON * (2 * next() - 1));
  const clamp = (v: number) => Math.max(-1, Math.min(1, v));
  return [images.map((v, i) => clamp(v + noise[i]!)), images.map((v, i) => clamp(v - noise[i]!))];
}

/** Per codebook: how the tested runtime's tokens compare with the reference's, near-ties set apart. */
export function compareTokens(codebooks: readonly string[], reference: TokenGrids, nearby: TokenGrids[], tested: TokenGrids): CodebookAgreement[] {
  return codebooks.map((codebook) => {
    const want = reference[codebook]!;
    const got = tested[codebook]!;
    if (got.length !== want.length) throw new Error(`codebook ${codebook}: ${got.length} tokens against the reference's ${want.length}`);
    const result = { codebook, positions: want.length, unclear: 0, mismatches_clear: 0, mismatches_all: 0 };
    for (let i = 0; i < want.length; i++) {
      const unclear = nearby.some((grids) => grids[codebook]![i] !== want[i]);
      if (unclear) result.unclear++;
      if (got[i] !== want[i]) {
        result.mismatches_all++;
        if (!unclear) result.mismatches_clear++;
      }
    }
    return result;
  });
}

/** One line per codebook whose clear tokens differ more than `allowedShare` of them allows (0: none may). */
export function tokenDisagreements(results: CodebookAgreement[], allowedShare: number): string[] {
  return results
    .filter((r) => r.mismatches_clear > Math.floor((r.positions - r.unclear) * allowedShare))
    .map((r) => `${r.codebook}: ${r.mismatches_clear} of ${r.positions - r.unclear} tokens with a clear CPU margin differ from the CPU's`);
}
