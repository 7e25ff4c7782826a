// Worker-thread side of the body parser: one request body in (moved, not copied), its token arrays or images out (moved back).
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { FqError, type ErrorKind, type FieldError } from '../errors.ts';
import { parseJsonImages, parseJsonTokens, parseMultipartImages, parseNpzTokens, type ImageBody, type ImageLimits, type TokenBody, type TokenLimits } from './body-parsing.ts';

export type BodyTask =
  | { kind: 'tokens'; format: 'json' | 'npz'; bytes: Uint8Array; limits: TokenLimits }
  | { kind: 'images'; format: 'json' | 'multipart'; bytes: Uint8Array; contentType: string; limits: ImageLimits };

/** FqError does not survive structured cloning (its class and kind are lost), so refusals travel as data. */
export type BodyReply =
  | { ok: true; tokens?: TokenBody; images?: ImageBody }
  | { ok: false; kind: ErrorKind; message: string; item?: number; fields?: FieldError[] };

async function parse(task: BodyTask): Promise<BodyReply> {
  if (task.kind === 'tokens') {
    return { ok: true, tokens: task.format === 'json' ? parseJsonTokens(task.bytes, task.limits) : await parseNpzTokens(task.bytes, task.limits) };
  }
  const images = task.format === 'json' ? parseJsonImages(task.bytes, task.limits) : await parseMultipartImages(task.bytes, task.contentType, task.limits);
  return { ok: true, images };
}

/** The buffers a reply owns alone, handed over rather than copied. */
function ownedBuffers(reply: BodyReply): ArrayBuffer[] {
  if (!reply.ok) return [];
  const views = [
    ...Object.values(reply.tokens?.arrays ?? {}).map((a) => a.data as unknown as ArrayBufferView),
    ...(reply.images?.images ?? []).map((i) => i.bytes),
  ];
  const buffers = new Set<ArrayBuffer>();
  for (const view of views) {
    // Only a view that is its whole buffer can move; a part of a shared one (none today) would be cloned.
    if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer) buffers.add(view.buffer);
  }
  return [...buffers];
}

export default async function parseBodyInWorker(task: BodyTask) {
  let reply: BodyReply;
  try {
    reply = await parse(task);
  } catch (err) {
    if (err instanceof FqError) return { ok: false, kind: err.kind, message: err.message, item: err.item, fields: err.fields } satisfies BodyReply;
    throw err;
  }
  return move({ [transferableSymbol]: ownedBuffers(reply), [valueSymbol]: reply });
}
