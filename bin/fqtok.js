#!/usr/bin/env node
// `fqtok` on PATH (npm link / npx): runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
