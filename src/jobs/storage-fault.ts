// A full or read-only data directory, recognised in the errors of the file system and of SQLite: such a
// failure is the disk's, not the job's or the request's, and is said as such (507 full, 503 read-only).
import { FqError } from '../errors.ts';

export interface StorageFault {
  kind: 'full' | 'read_only' | 'io';
  /** The error code as raised (ENOSPC, SQLITE_FULL, EROFS, SQLITE_READONLY, SQLITE_IOERR_WRITE, ...). */
  code: string;
  /** What the code means, for people. */
  detail: string;
}

const FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);
const READ_ONLY = new Set(['EROFS', 'EACCES', 'EPERM', 'SQLITE_CANTOPEN']);

/** The storage fault behind `err` (or any error in its cause chain), if it is one. */
export function storageFault(err: unknown): StorageFault | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') continue;
    const detail = e.message.split('\n')[0]!;
    if (FULL.has(code)) return { kind: 'full', code, detail };
    if (READ_ONLY.has(code) || code.startsWith('SQLITE_READONLY')) return { kind: 'read_only', code, detail };
    if (code.startsWith('SQLITE_IOERR')) return { kind: 'io', code, detail };
  }
  return undefined;
}

/** The same read from a trainer's error message (Python's OSError text: "[Errno 28] No space left on device"). */
export function storageFaultInMessage(message: string): StorageFault | undefined {
  if (/No space left on device|Errno 28\b/.test(message)) return { kind: 'full', code: 'ENOSPC', detail: message };
  if (/Disk quota exceeded|Errno 122\b/.test(message)) return { kind: 'full', code: 'EDQUOT', detail: message };
  if (/Read-only file system|Errno 30\b/.test(message)) return { kind: 'read_only', code: 'EROFS', detail: message };
  return undefined;
}

/** One sentence: what is wrong with the data directory, and the error that said so. */
export function describeFault(fault: StorageFault): string {
  const what = fault.kind === 'full' ? 'is full' : fault.kind === 'read_only' ? 'is read-only' : 'could not be written';
  return `the data directory (FQ_DATA_DIR) ${what}: ${fault.code}: ${fault.detail}`;
}

/** The refusal of a request that needs to write there: 507 when full, else 503. */
export function faultRefusal(fault: StorageFault, doing: string): FqError {
  const message = `${doing} failed: ${describeFault(fault)}`;
  return fault.kind === 'full'
    ? new FqError('insufficient_storage', `${message}; free some space and retry`)
    : new FqError('unavailable', message, { retryAfterSeconds: 60 });
}
