// The bulk CLI's view of a tokenizer: in this process (model registry + preprocessing) or a server over HTTP.
import { readNpz, writeNpz } from '../formats/npz.ts';
import { readSampleArchive } from '../formats/sample-archive.ts';
import type { ImageFormat } from '../imaging/tensor-to-image.ts';
import type { Config } from '../config.ts';
import { createPreprocessor } from '../imaging/preprocess.ts';
import { decodeGrids, decodeTokensRgb, validateGrids, type DecodedRgb } from '../tokenize/decode-grids.ts';
import { encodeImages, selectCodebooks, type SourceImage } from '../tokenize/encode-images.ts';
import { ModelRegistry } from '../serving/model-registry.ts';
import { toGridSet, type TokenArrays } from '../tokenize/token-layout.ts';
import type { Augment } from '../tokenize/views.ts';
import type { Orientation } from '../imaging/read-image.ts';

export interface EncodeOptions {
  model?: string;
  augment: Augment;
  orientation: Orientation;
}

export interface EncodedFiles {
  /** Per codebook, [count, views, h*w] in C order. */
  tokens: Record<string, Int32Array>;
  codebooks: string[];
  views: number;
  cells: number;
}

/** What the CLI needs to know of a model before decoding: its grid, output size and codebooks. */
export interface ModelInfo {
  label: string;
  grid: [number, number];
  height: number;
  width: number;
  codebooks: { name: string; size: number }[];
}

export interface CliTokenizer {
  /**
   * Crops (images x views) worth sending at once: enough to fill one inference run. On a GPU that is
   * GPU_BATCH (a GPU's throughput keeps growing with the batch where a CPU's is flat); on a CPU the
   * micro-batch maximum (FQ_MAX_BATCH), since larger batches only add latency and memory there.
   */
  preferredBatch: number;
  encode(images: SourceImage[], options: EncodeOptions): Promise<EncodedFiles>;
  describe(model?: string): Promise<ModelInfo>;
  /** Token arrays in any accepted layout -> one image file each. */
  decode(arrays: TokenArrays, options: { model?: string; format: ImageFormat }): Promise<Buffer[]>;
  /** Token arrays in any accepted layout -> raw 8-bit RGB, HWC, one image after another. */
  decodeRgb(arrays: TokenArrays, options: { model?: string }): Promise<DecodedRgb>;
  close(): Promise<void>;
}

/** Crops per inference run for bulk work on a GPU provider. */
export const GPU_BATCH = 64;
/** Crops per request to a CPU server, whose micro-batch maximum the client cannot see (its default is 8). */
const REMOTE_CPU_BATCH = 16;

export async function localTokenizer(config: Config): Promise<CliTokenizer> {
  const onGpu = config.executionProviders[0] !== 'cpu';
  const preferredBatch = onGpu ? Math.max(GPU_BATCH, config.maxBatch) : config.maxBatch;
  // Bulk work owns this process: one run per batch, and room in the queue for every batch in flight.
  const registry = new ModelRegistry({ ...config, maxBatch: preferredBatch, maxQueue: Math.max(config.maxQueue, 64 * preferredBatch) });
  await registry.loadModelsDir(config.modelsDir);
  const preprocessor = createPreprocessor({
    maxInputPixels: config.maxInputPixels,
    maxDecodePixelsInFlight: config.maxDecodePixelsInFlight,
    threads: config.preprocessThreads,
  }); // crops to each model's image_size
  return {
    preferredBatch,
    async encode(images, options) {
      const tokenizer = registry.get(options.model);
      const batch = await encodeImages(tokenizer, preprocessor, images, { augment: options.augment, orientation: options.orientation });
      return { tokens: batch.tokens, codebooks: batch.codebooks, views: batch.views.length, cells: batch.grid[0] * batch.grid[1] };
    },
    async describe(model) {
      const m = registry.get(model).model;
      const down = m.manifest.downsample;
      const [h, w] = m.manifest.grid;
      return { label: `${m.name}@${m.version}`, grid: [h, w], height: h * down, width: w * down, codebooks: m.manifest.codebooks };
    },
    async decode(arrays, options) {
      const tokenizer = registry.get(options.model);
      const set = toGridSet(arrays, tokenizer.model.manifest.grid, tokenizer.label);
      return decodeGrids(tokenizer, set, { codebooks: selectCodebooks(tokenizer, undefined), format: options.format });
    },
    async decodeRgb(arrays, options) {
      const tokenizer = registry.get(options.model);
      const codebooks = selectCodebooks(tokenizer, undefined);
      const set = toGridSet(arrays, tokenizer.model.manifest.grid, tokenizer.label);
      return decodeTokensRgb(tokenizer, validateGrids(tokenizer, set, codebooks), set.count, codebooks);
    },
    async close() {
      await registry.close();
      await preprocessor.close();
    },
  };
}

async function expectOk(response: Response): Promise<Response> {
  if (response.ok) return response;
  const text = await response.text();
  let detail = text;
  try {
    detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
  } catch {
    /* not problem+json */
  }
  throw new Error(`server answered ${response.status}: ${detail}`);
}

/** A server's answer to GET /models, as far as the client reads it. */
interface ModelsListing {
  default: string | null;
  models?: { name: string; execution_provider?: string }[];
}

export async function remoteTokenizer(baseUrl: string, model?: string): Promise<CliTokenizer> {

interface ModelListing {
  name: string;
  version: number;
  grid: [number, number];
  downsample: number;
  codebooks: { name: string; size: number }[];
}

  const url = (p: string, q: Record<string, string | undefined>) => {
    const u = new URL(p, baseUrl);
    for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  };
  const listing = (await (await expectOk(await fetch(url('/models', {})))).json()) as ModelsListing;
  const served = listing.models?.find((m) => m.name === (model ?? listing.default));
  const onGpu = served?.execution_provider !== undefined && served.execution_provider !== 'cpu';
  const postNpz = async (arrays: TokenArrays, query: Record<string, string | undefined>, accept: string) => {
    const npz = writeNpz(Object.fromEntries(Object.entries(arrays).map(([n, a]) => [n, { shape: a.shape, data: Int32Array.from(a.data) }])));
    return expectOk(
      await fetch(url('/decode', query), { method: 'POST', headers: { 'content-type': 'application/x-npz', accept }, body: npz as Uint8Array<ArrayBuffer> }),
    );
  };
  return {
    preferredBatch: onGpu ? GPU_BATCH : REMOTE_CPU_BATCH,
    async encode(images, options) {
      const form = new FormData();
      images.forEach((image, i) => form.append('image', new Blob([new Uint8Array(image.bytes)]), image.name ?? `image-${i}`));
      const response = await expectOk(
        await fetch(url('/encode', { model: options.model, augment: options.augment, orientation: options.orientation, format: 'npz' }), {
          method: 'POST',
          body: form,
        }),
      );
      const arrays = readNpz(new Uint8Array(await response.arrayBuffer()), 1 << 30);
      const codebooks = Object.keys(arrays);
      const shape = arrays[codebooks[0]!]!.shape; // [N, A, h, w]
      return {
        tokens: Object.fromEntries(codebooks.map((n) => [n, arrays[n]!.data])),
        codebooks,
        views: shape[1]!,
        cells: shape[2]! * shape[3]!,
      };
    },
    async describe(model) {
      const response = await expectOk(await fetch(url(model ? `/models/${encodeURIComponent(model)}` : '/models', {})));
      const body = (await response.json()) as ModelListing | { default: string | null; models: ModelListing[] };
      const m = 'models' in body ? body.models.find((x) => x.name === body.default) : body;
      if (!m) throw new Error(`${baseUrl} has no default model; name one with --model`);
      return { label: `${m.name}@${m.version}`, grid: m.grid, height: m.grid[0] * m.downsample, width: m.grid[1] * m.downsample, codebooks: m.codebooks };
    },
    async decode(arrays, options) {
      const response = await postNpz(arrays, { model: options.model, format: options.format }, 'application/json');
      const body = (await response.json()) as { images: { data: string }[] };
      return body.images.map((i) => Buffer.from(i.data, 'base64'));
    },
    async decodeRgb(arrays, options) {
      const response = await postNpz(arrays, { model: options.model, format: 'npz' }, 'application/x-npz');
      const { shape, rgb } = readSampleArchive(new Uint8Array(await response.arrayBuffer()));
      return { rgb, height: shape[1]!, width: shape[2]! };
    },
    async close() {},
  };
}
