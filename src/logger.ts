// The process-wide logger (pino, on stderr): readable lines on a terminal (pino-pretty), JSON lines when
// stderr is not a terminal (a pipe, a log collector) or when FQ_LOG_FORMAT says so.
import { pino, type Level, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  level: Level | 'silent';
  format: LogFormat;
}

function create({ level, format }: LoggerOptions): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const destination = pretty
    ? // Synchronous, like pino.destination(2): a line is out before the process may exit.
      pinoPretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' })
    : pino.destination(2);
  return pino({ level, base: { service: 'fqtok' } }, destination);
}

/**
 * Modules import this binding and always see the current logger. Until the server or the CLI has read
 * its configuration and called configureLogger(), it logs at info, as JSON.
 */
export let logger: Logger = create({ level: 'info', format: 'json' });

export function configureLogger(options: LoggerOptions): void {
  logger = create(options);
}
