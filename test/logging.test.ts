// Logs for people and for machines: readable lines on a terminal, JSON lines in a pipe or when asked
// (FQ_LOG_FORMAT); CLI commands quiet unless --verbose.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { writeNpz } from '../src/formats/npz.ts';
import { ROOT } from './helpers/paths.ts';

const work = mkdtempSync(path.join(tmpdir(), 'fqtok-logging-'));
after(() => rmSync(work, { recursive: true, force: true }));

const ANSI = /\x1b\[[0-9;]*m/g;

test('on a terminal the service logs readable lines, not JSON', { timeout: 120_000 }, async () => {
  // util-linux's script(1) gives the service a pseudo-terminal for its stdout and stderr.
  const command = `${JSON.stringify(process.execPath)} --import tsx src/main.ts`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...process.env, FQ_PORT: '0', FQ_HOST: '127.0.0.1', FQ_LOG_LEVEL: 'info', FQ_DATA_DIR: path.join(work, 'data'), FQ_PREPROCESS_THREADS: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the service did not say it listens within 100 s:\n${out}`)), 100_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const found = out.replace(ANSI, '').split(/\r?\n/).find((l) => l.includes('fqtok listening'));
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
      });
      child.once('exit', (code) => reject(new Error(`script exited (${code}) before the service listened:\n${out}`)));
    });
    assert.ok(!line.trimStart().startsWith('{'), line);
    assert.match(line, /INFO.*fqtok listening/);
    assert.match(out, /\x1b\[/, 'colours on a terminal');
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // script and the service it runs
    } catch {
      /* gone */
    }
  }
});

test('fqtok commands print their results only; --verbose adds the log, JSON in a pipe, readable lines with FQ_LOG_FORMAT=pretty', async () => {
  const codes = path.join(work, 'codes.npz');
  writeFileSync(codes, writeNpz(Object.fromEntries(['vis', 'sem_mid', 'sem_high'].map((n) => [n, { shape: [1, 256], data: new Int32Array(256).fill(3) }]))));
  const fqtok = (env: Record<string, string>, ...args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli.ts'), 'decode', codes, '--out', path.join(work, `out-${args.length}-${Object.keys(env).length}`), ...args], {
      cwd: ROOT,
      env: { ...process.env, FQ_LOG_LEVEL: 'info', FQ_MODELS_DIR: path.join(ROOT, 'models'), ...env },
    });
  const quiet = await fqtok({});
  assert.equal(JSON.parse(quiet.stdout).decoded, 1);
  assert.doesNotMatch(quiet.stderr, /model loaded/);
  const json = await fqtok({}, '--verbose');
  const lines = json.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string });
  assert.ok(lines.some((l) => l.msg === 'model loaded'), json.stderr);
  const pretty = await fqtok({ FQ_LOG_FORMAT: 'pretty' }, '-v');
  const loaded = pretty.stderr.split('\n').find((l) => l.includes('model loaded'));
  assert.ok(loaded && !loaded.startsWith('{'), pretty.stderr);
});
