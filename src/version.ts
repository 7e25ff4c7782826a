// fqtok's own version (package.json), recorded with what it makes.
import { createRequire } from 'node:module';

export const FQTOK_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
