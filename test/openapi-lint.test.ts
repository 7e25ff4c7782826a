// The committed OpenAPI document passes `redocly lint` with its recommended rules; the only exceptions are the reasoned ones in .redocly.lint-ignore.yaml.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { ROOT } from './helpers/server.ts';

const redocly = path.join(path.dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js');

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
}

test('openapi.yaml passes redocly lint (recommended rules), with no more and no fewer exceptions than the ignore file gives reasons for', async () => {
  const run = await promisify(execFile)(process.execPath, [redocly, 'lint', 'openapi.yaml', '--format=json'], {
    cwd: ROOT,
    // No telemetry, no update check: CI has no network and a lint needs none.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    timeout: 120_000,
  }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
  const report = JSON.parse(run.stdout) as LintReport;
  const problems = report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
  assert.deepEqual(problems, []);
  assert.deepEqual([report.totals.errors, report.totals.warnings], [0, 0]);
  const ignoreFile = parse(await readFile(path.join(ROOT, '.redocly.lint-ignore.yaml'), 'utf8')) as Record<string, Record<string, string[]>>;
  const exceptions = Object.values(ignoreFile['openapi.yaml'] ?? {}).flat().length;
  assert.equal(report.totals.ignored, exceptions, 'every entry of .redocly.lint-ignore.yaml still matches a problem');
});
