// Opens the SQLite database (WAL, busy timeout, foreign keys) and applies the migrations in migrations/.
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import * as schema from './schema.ts';

export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../migrations');

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

export function openDatabase(file: string): Db {
  mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL'); // readers (GET /jobs, SSE) never wait for the runner's writes
  sqlite.pragma('busy_timeout = 5000'); // a second process (the CLI, a test) waits instead of failing
  sqlite.pragma('synchronous = NORMAL'); // with WAL: durable across a process crash, fast
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema });
  migrate(db, { migrationsFolder: MIGRATIONS_DIR });
  return db;
}
