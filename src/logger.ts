// The process-wide structured logger (JSON lines on stderr).
import { pino } from 'pino';

export const logger = pino(
  { level: process.env.FQ_LOG_LEVEL ?? 'info', base: { service: 'fqtok' } },
  pino.destination(2),
);
