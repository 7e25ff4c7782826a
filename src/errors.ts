// The one error type of fqtok: lower layers throw it with a `kind`; the HTTP edge (http/problem.ts) maps kind -> status.
export type ErrorKind =
  | 'bad_request' // malformed body, options or parameters
  | 'bad_image' // undecodable, truncated or empty image
  | 'too_large' // body, pixels or image count over a limit
  | 'unsupported_media_type'
  | 'not_acceptable'
  | 'bad_tokens' // grids missing, mismatched, non-integer or out of range
  | 'validation' // a well-formed request whose values are not acceptable (field-level)
  | 'unknown_model'
  | 'not_found'
  | 'conflict'
  | 'unauthorized'
  | 'forbidden'
  | 'disabled' // a feature switched off by configuration
  | 'overloaded' // queue full
  | 'timeout'
  | 'request_timeout' // the client stopped sending its body
  | 'unavailable' // not ready (model loading, shutting down), or the data directory is read-only
  | 'insufficient_storage' // the data directory is full
  | 'internal';

export interface FieldError {
  field: string;
  message: string;
}

export interface FqErrorOptions {
  /** Which item of a batch request was at fault (0-based), when there is one. */
  item?: number;
  fields?: FieldError[];
  retryAfterSeconds?: number;
  cause?: unknown;
}

export class FqError extends Error {
  readonly kind: ErrorKind;
  readonly item?: number;
  readonly fields?: FieldError[];
  readonly retryAfterSeconds?: number;

  constructor(kind: ErrorKind, message: string, options: FqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FqError';
    this.kind = kind;
    this.item = options.item;
    this.fields = options.fields;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** Why an aborted signal stopped work: its own FqError when it carries one (a timeout, say), else `the request was aborted`. */
export function abortReason(signal: AbortSignal): FqError {
  return signal.reason instanceof FqError ? signal.reason : new FqError('bad_request', 'the request was aborted', { cause: signal.reason });
}

/**
 * A value the client sent (a model or codebook name), quoted for an error message or a log line, and cut
 * short: a 30 MB name must not come back in the answer or fill the log.
 */
export function quoted(value: string, max = 80): string {
  return value.length <= max ? `'${value}'` : `'${value.slice(0, max)}...' (${value.length} characters)`;
}

/** As quoted(), without the quotes (a file name in parentheses). */
export function clipped(value: string, max = 80): string {
  return value.length <= max ? value : `${value.slice(0, max)}... (${value.length} characters)`;
}
