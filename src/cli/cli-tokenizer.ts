// The bulk CLI's view of a tokenizer: in this process (the same operations the HTTP routes call, on the one
// model a command uses) or a server over HTTP.
import { createHash } from 'node:crypto';
import { readManifest, type Manifest } from '../backends/manifest.ts';
import type { BackendInfo } from '../backends/backend.ts';
import type { Config } from '../config.ts';
import { readNpz, writeNpz } from '../formats/npz.ts';
import { readSampleArchive } from '../formats/sample-archive.ts';
import { createPreprocessor, type Preprocessor } from '../imaging/preprocess.ts';
import type { Orientation } from '../imaging/read-image.ts';
import type { ImageFormat } from '../imaging/write-image.ts';
import { findModelFolders, pickModelFolder, type ModelFolder } from '../serving/model-folders.ts';
import { ModelRegistry } from '../serving/model-registry.ts';
import type { BatchingOptions, ServedModel } from '../serving/served-model.ts';
import { decodeGrids, decodeRgb, type DecodedRgb } from '../tokenize/decode-grids.ts';
import { encodeImages, type SourceImage } from '../tokenize/encode-images.ts';
import type { GridSet } from '../tokenize/token-layout.ts';
import type { Augment } from '../tokenize/views.ts';

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

/** What the CLI needs to know of a model before decoding or counting: its grid, output size and codebooks. */
export interface ModelInfo {
  label: string;
  name: string;
  version: number;
  /** sha256 of its manifest (as JSON): tells two models of one name and version apart. */
  fingerprint: string;
  grid: [number, number];
  height: number;
  width: number;
  codebooks: { name: string; size: number }[];
}

export interface CliTokenizer {
  /**
   * Crops (images x views) per inference run for `model`: the one batch size of the bulk path. Commands
   * send this much at once (a batch of images is one run), and BATCHES_IN_FLIGHT batches at most.
   */
  runSize(model?: string): Promise<number>;
  encode(images: SourceImage[], options: EncodeOptions): Promise<EncodedFiles>;
  /** The model's facts, from its manifest (nothing is started for it in this process). */
  describe(model?: string): Promise<ModelInfo>;
  /** Grids -> one image file each. */
  decode(set: GridSet, options: { model?: string; format: ImageFormat }): Promise<Buffer[]>;
  /** Grids -> raw 8-bit RGB, HWC, one image after another. */
  decodeRgb(set: GridSet, options: { model?: string }): Promise<DecodedRgb>;
  close(): Promise<void>;
}

/** Batches under way at once in a bulk command: one in inference, one being preprocessed, one being read. */
export const BATCHES_IN_FLIGHT = 3;
/** Crops per inference run for bulk work on a GPU (its throughput keeps growing with the batch; a CPU's is flat). */
export const GPU_RUN_SIZE = 64;
/** Crops per request to a CPU server, whose micro-batch maximum the client cannot see (its default is 8). */
const REMOTE_CPU_RUN_SIZE = 16;

const onGpu = (device: string | undefined) => device !== undefined && device !== 'cpu';

function modelInfo(name: string, version: number, manifest: Manifest): ModelInfo {
  const [h, w] = manifest.grid;
  return {
    label: `${name}@${version}`,
    name,
    version,
    fingerprint: createHash('sha256').update(JSON.stringify(manifest)).digest('hex'),
    grid: [h, w],
    height: h * manifest.downsample,
    width: w * manifest.downsample,
    codebooks: manifest.codebooks.map(({ name, size }) => ({ name, size })),
  };
}

export interface LocalOptions {
  /** Crops per inference run; default GPU_RUN_SIZE where the model's backend runs on a GPU, FQ_MAX_BATCH on a CPU. */
  runSize?: number;
}

/** Models from FQ_MODELS_DIR, each loaded (backend started) only when a command first runs it. */
export async function localTokenizer(config: Config, options: LocalOptions = {}): Promise<CliTokenizer> {
  const folders = (await findModelFolders(config.modelsDir)) ?? [];
  const folder = (name?: string): ModelFolder => pickModelFolder(folders, name, config.defaultModel);
  // Bulk work owns this process: one run per batch, and queue room for exactly the batches in flight.
  const batchingFor = (backend: BackendInfo): BatchingOptions => {
    const run = options.runSize ?? (onGpu(backend.device) ? GPU_RUN_SIZE : config.maxBatch);
    return { maxBatch: run, batchWaitMs: config.batchWaitMs, maxQueue: BATCHES_IN_FLIGHT * run };
  };
  const registry = new ModelRegistry({ ...config, batchingFor });
  const loading = new Map<string, Promise<ServedModel>>();
  const served = (name?: string): Promise<ServedModel> => {
    const { name: found, version, dir } = folder(name);
    if (!loading.has(found)) loading.set(found, registry.load(found, version, dir));
    return loading.get(found)!;
  };
  let preprocessor: Preprocessor | undefined; // started by the first encode; crops to each model's image_size
  const crops = () =>
    (preprocessor ??= createPreprocessor({
      maxInputPixels: config.maxInputPixels,
      maxDecodePixelsInFlight: config.maxDecodePixelsInFlight,
      threads: config.preprocessThreads,
    }));
  return {
    async runSize(model) {
      return (await served(model)).maxBatch;
    },
    async encode(images, options) {
      const batch = await encodeImages(await served(options.model), crops(), images, { augment: options.augment, orientation: options.orientation });
      return { tokens: batch.tokens, codebooks: batch.codebooks, views: batch.views.length, cells: batch.grid[0] * batch.grid[1] };
    },
    async describe(model) {
      const { name, version, dir } = folder(model);
      return modelInfo(name, version, await readManifest(dir));
    },
    async decode(set, options) {
      return decodeGrids(await served(options.model), set, { format: options.format });
    },
    async decodeRgb(set, options) {
      return decodeRgb(await served(options.model), set, {});
    },
    async close() {
      await Promise.allSettled(loading.values()); // a model still starting is closed with the rest
      await registry.close();
      await preprocessor?.close();
    },
  };
}

/** A server's refusal, with its status: the caller tells the image's fault (4xx about the image) from the server's. */
export class ServerAnswer extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(`server answered ${status}: ${detail}`);
  }
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
  throw new ServerAnswer(response.status, detail);
}

/** A model as the server's GET /models and GET /models/{name} describe it, as far as the client reads it. */
interface ServedModelListing {
  name: string;
  version: number;
  device?: string;
  /** In GET /models/{name} only. */
  manifest?: Manifest;
}

export async function remoteTokenizer(baseUrl: string): Promise<CliTokenizer> {
  const url = (p: string, q: Record<string, string | undefined> = {}) => {
    const u = new URL(p, baseUrl);
    for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  };
  const listing = async (model?: string): Promise<ServedModelListing> => {
    const response = await expectOk(await fetch(url(model ? `/models/${encodeURIComponent(model)}` : '/models')));
    const body = (await response.json()) as ServedModelListing | { default: string | null; models: ServedModelListing[] };
    const found = 'models' in body ? body.models.find((m) => m.name === body.default) : body;
    if (!found) throw new Error(`${baseUrl} has no default model; name one with --model`);
    return found;
  };
  const postNpz = async (set: GridSet, query: Record<string, string | undefined>, accept: string) => {
    const cells = set.grid[0] * set.grid[1];
    const npz = writeNpz(Object.fromEntries(Object.entries(set.tokens).map(([n, data]) => [n, { shape: [set.count, cells], data: Int32Array.from(data) }])));
    return expectOk(
      await fetch(url('/decode', query), { method: 'POST', headers: { 'content-type': 'application/x-npz', accept }, body: npz as Uint8Array<ArrayBuffer> }),
    );
  };
  return {
    async runSize(model) {
      return onGpu((await listing(model)).device) ? GPU_RUN_SIZE : REMOTE_CPU_RUN_SIZE;
    },
    async encode(images, options) {
      const form = new FormData();
      images.forEach((image, i) => form.append('image', new Blob([new Uint8Array(image.bytes)]), image.name ?? `image-${i}`));
      const response = await expectOk(
        await fetch(url('/encode', { model: options.model, augment: options.augment, orientation: options.orientation, format: 'npz' }), {
          method: 'POST',
          body: form,
        }),
      );
      const arrays = await readNpz(new Uint8Array(await response.arrayBuffer()), { maxBytes: 1 << 30 });
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
      const found = await listing(model);
      const m = found.manifest ? found : await listing(found.name);
      return modelInfo(m.name, m.version, m.manifest!);
    },
    async decode(set, options) {
      const response = await postNpz(set, { model: options.model, format: options.format }, 'application/json');
      const body = (await response.json()) as { images: { data: string }[] };
      return body.images.map((i) => Buffer.from(i.data, 'base64'));
    },
    async decodeRgb(set, options) {
      const response = await postNpz(set, { model: options.model, format: 'npz' }, 'application/x-npz');
      const { shape, rgb } = readSampleArchive(new Uint8Array(await response.arrayBuffer()));
      return { rgb, height: shape[1]!, width: shape[2]! };
    },
    async close() {},
  };
}
