// Serves a fixed set of files (the console's own assets, and the few browser files it uses from node_modules) by exact name.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Context } from 'hono';
import { FqError } from '../errors.ts';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** name -> absolute path; nothing outside this table is ever read, whatever the URL says. */
export type FileTable = ReadonlyMap<string, string>;

/** Every file directly in `dir` with a known type. */
export function folderFiles(dir: string): FileTable {
  return new Map(
    readdirSync(dir)
      .filter((name) => TYPES[path.extname(name)])
      .map((name) => [name, path.join(dir, name)]),
  );
}

const require = createRequire(import.meta.url);

/** Files of an installed package, named as they are in its folder (found through its package.json, so hoisting does not matter). */
export function packageFiles(pkg: string, files: Record<string, string>): FileTable {
  const root = path.dirname(require.resolve(`${pkg}/package.json`));
  return new Map(Object.entries(files).map(([name, relative]) => [name, path.join(root, relative)]));
}

/** A handler for `<prefix>/:name`: the file's bytes with its type (read per request: the OS caches them, and an edited asset shows at once). */
export function serveFiles(table: FileTable) {
  return async function serveFile(c: Context) {
    const file = table.get(c.req.param('name') ?? '');
    if (!file) throw new FqError('not_found', `no file ${c.req.path}`);
    return c.body(new Uint8Array(await readFile(file)), 200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
  };
}
