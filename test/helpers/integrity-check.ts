// `PRAGMA integrity_check` for tests that crash the service and then inspect its database.
import type { Db } from '../../src/db/client.ts';

/** 'ok', or the first problems SQLite reports. */
export function integrityCheck(db: Db): string {
  const rows = db.$client.pragma('integrity_check') as { integrity_check: string }[];
  return rows.map((r) => r.integrity_check).join('; ');
}
