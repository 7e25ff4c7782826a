// The configuration: FQ_* variables to settings, with their defaults, derived folders and one error for every bad value.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../src/config.ts';

test('defaults, and folders that follow FQ_DATA_DIR unless set', () => {
  const config = loadConfig({ FQ_DATA_DIR: '/srv/fq' });
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.port, 8080);
  assert.equal(config.modelsDir, path.resolve('./models'));
  assert.equal(config.datasetsDir, '/srv/fq/datasets');
  assert.equal(config.weightsDir, '/srv/fq/weights');
  assert.deepEqual(config.executionProviders, ['cpu']);
  assert.equal(config.maxBatch, 8);
  assert.equal(config.jobCancelGraceMs, 8000);
  assert.equal(config.logLevel, 'info');
  assert.equal(config.adminToken, undefined);

  const set = loadConfig({ FQ_DATASETS_DIR: 'ds', FQ_WEIGHTS_DIR: '/w', FQ_EXECUTION_PROVIDERS: 'cuda, cpu', FQ_PORT: '0', FQ_LOG_LEVEL: 'silent' });
  assert.equal(set.datasetsDir, path.resolve('ds'));
  assert.equal(set.weightsDir, '/w');
  assert.deepEqual(set.executionProviders, ['cuda', 'cpu']);
  assert.equal(set.port, 0);
  assert.equal(set.logLevel, 'silent');
});

test('every bad variable is named in one error', () => {
  assert.throws(
    () => loadConfig({ FQ_PORT: '70000', FQ_ADMIN_TOKEN: 'short', FQ_EXECUTION_PROVIDERS: 'tpu', FQ_LOG_LEVEL: 'loud' }),
    (err: Error) => {
      assert.match(err.message, /^invalid configuration:/);
      for (const name of ['FQ_PORT', 'FQ_EXECUTION_PROVIDERS', 'FQ_LOG_LEVEL']) assert.match(err.message, new RegExp(`\\n  ${name}\\b`));
      assert.match(err.message, /FQ_ADMIN_TOKEN: FQ_ADMIN_TOKEN must be at least 16 characters/);
      return true;
    },
  );
});
