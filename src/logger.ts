// The process-wide structured logger (JSON lines on stderr).
import { pino } from 'pino';

/** Its level comes from the configuration (FQ_LOG_LEVEL): the server and the CLI set it once they have read it. */
export const logger = pino({ level: 'info', base: { service: 'fqtok' } }, pino.destination(2));
