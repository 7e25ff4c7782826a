// A Hugging Face Hub stand-in for tests: a real HTTP server on a free port answering the routes a Hub
// client uses (revision info, paths-info, resolve with byte ranges) for files the test makes, plus
// plain file URLs (for weights published outside the Hub). It can cut a download short, corrupt one,
// hold one back until released, demand a token, and it records every request.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInRepo {
  /** owner/name */
  id: string;
  /** path in the repository -> content; JSON files are kept in git, everything else in LFS (as on the Hub). */
  files: Record<string, Buffer>;
}

export interface RecordedRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface HubStandIn {
  url: string;
  /** The commit `main` resolves to, per repository. */
  commit(repo: string): string;
  requests: RecordedRequest[];
  /** The next download of `path` (in any repo, or at /files/) sends `bytes` bytes, then the connection drops. */
  cutNext(path: string, bytes: number): void;
  /** Downloads of `path` send other bytes than the metadata describes. */
  corrupt(path: string): void;
  /** Downloads of `path` wait until the returned function is called. */
  hold(path: string): () => void;
  /** Every request to a Hub route needs `Authorization: Bearer <token>`. */
  requireToken(token: string): void;
  close(): Promise<void>;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const gitBlobId = (data: Buffer) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const isLfs = (path: string) => !path.endsWith('.json');

export async function startHubStandIn(repos: StandInRepo[], plainFiles: Record<string, Buffer> = {}): Promise<HubStandIn> {
  const commits = new Map(repos.map((r) => [r.id, randomBytes(20).toString('hex')]));
  const byId = new Map(repos.map((r) => [r.id, r]));
  const requests: RecordedRequest[] = [];
  const cuts = new Map<string, number>();
  const corrupted = new Set<string>();
  const held = new Map<string, { gate: Promise<void>; release(): void }>();
  let token: string | undefined;

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };

  async function sendFile(req: http.IncomingMessage, res: http.ServerResponse, path: string, data: Buffer, headers: Record<string, string>) {
    await held.get(path)?.gate;
    let body = corrupted.has(path) ? Buffer.from(data.map((b, i) => (i === 0 ? b ^ 0xff : b))) : data;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const common = { 'accept-ranges': 'bytes', etag: `"${isLfs(path) ? sha256(data) : gitBlobId(data)}"`, ...headers };
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        return res.end();
      }
      body = body.subarray(start, end + 1);
      res.writeHead(206, { ...common, 'content-length': String(body.length), 'content-range': `bytes ${start}-${end}/${data.length}` });
    } else {
      res.writeHead(200, { ...common, 'content-length': String(body.length) });
    }
    if (req.method === 'HEAD') return res.end();
    const cut = cuts.get(path);
    if (cut !== undefined && body.length > cut) {
      cuts.delete(path);
      // The connection ends mid-file (after what was sent arrives: a FIN, not a reset that could drop some).
      res.write(body.subarray(0, cut), () => res.socket?.end());
      return;
    }
    res.end(body);
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const body = await new Promise<string>((resolve) => {
        let text = '';
        req.on('data', (c: Buffer) => (text += c.toString()));
        req.on('end', () => resolve(text));
      });
      requests.push({ method: req.method!, url: req.url!, range: req.headers.range, authorization: req.headers.authorization });
      const url = new URL(req.url!, 'http://stand-in');
      const parts = url.pathname.split('/').map(decodeURIComponent);
      if (parts[1] === 'files' && plainFiles[parts[2]!]) return sendFile(req, res, parts[2]!, plainFiles[parts[2]!]!, {});
      // The Hub's own routes need the token (plain file URLs are another server's: no token goes there).
      if (token && req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { error: 'Invalid credentials in Authorization header' });
      // /api/models/{owner}/{name}/revision/{rev} and /api/models/{owner}/{name}/paths-info/{rev}
      if (parts[1] === 'api' && parts[2] === 'models') {
        const id = `${parts[3]}/${parts[4]}`;
        const repo = byId.get(id);
        const commit = commits.get(id);
        const revision = parts[6];
        if (!repo || (revision !== 'main' && revision !== commit)) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
        if (parts[5] === 'revision') return json(res, 200, { _id: id, id, sha: commit, private: false, lastModified: new Date().toISOString() });
        if (parts[5] === 'paths-info' && req.method === 'POST') {
          const paths = (JSON.parse(body) as { paths: string[] }).paths;
          return json(
            res,
            200,
            paths
              .filter((p) => repo.files[p])
              .map((p) => {
                const data = repo.files[p]!;
                return { type: 'file', path: p, size: data.length, oid: gitBlobId(data), ...(isLfs(p) ? { lfs: { oid: sha256(data), size: data.length, pointerSize: 134 } } : {}) };
              }),
          );
        }
      }
      // /{owner}/{name}/resolve/{rev}/{path...}
      if (parts[3] === 'resolve') {
        const id = `${parts[1]}/${parts[2]}`;
        const repo = byId.get(id);
        const commit = commits.get(id);
        const path = parts.slice(5).join('/');
        if (!repo || (parts[4] !== 'main' && parts[4] !== commit)) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
        const data = repo.files[path];
        if (!data) return json(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
        return sendFile(req, res, path, data, { 'x-repo-commit': commit!, ...(isLfs(path) ? { 'x-linked-etag': `"${sha256(data)}"`, 'x-linked-size': String(data.length) } : {}) });
      }
      json(res, 404, { error: `no stand-in route for ${req.method} ${url.pathname}` });
    })().catch((err: Error) => {
      res.destroy(err);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    commit: (repo) => commits.get(repo)!,
    requests,
    cutNext: (path, bytes) => cuts.set(path, bytes),
    corrupt: (path) => corrupted.add(path),
    hold(path) {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      held.set(path, { gate, release });
      return () => {
        held.delete(path);
        release();
      };
    },
    requireToken: (t) => (token = t),
    close: () =>
      new Promise((resolve) => {
        for (const { release } of held.values()) release(); // nothing waits forever
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
