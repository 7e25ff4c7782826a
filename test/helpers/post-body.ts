// POST a body with node:http, which reads an early answer (a 413 or 503 sent before the body was read)
// even when the server stops reading; gives up after `timeoutMs` instead of waiting on a stalled server.
import { request } from 'node:http';

export interface PostAnswer {
  /** null when nothing came back within the time. */
  status: number | null;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  ms: number;
}

export function postBody(url: string, bytes: Uint8Array, headers: Record<string, string>, timeoutMs: number): Promise<PostAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-length': String(bytes.length), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? null, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - started });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ status: null, headers: {}, body: Buffer.alloc(0), ms: performance.now() - started });
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      // the server answered early and closed while we were still sending: the response handler has it
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') {
        clearTimeout(timer);
        reject(err);
      }
    });
    req.end(bytes);
  });
}
