// The configuration: FQ_* variables to settings, with their defaults, derived folders and one error for every bad value.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

test('the Hugging Face settings mean what they mean for every Hub client; FQ_PULL is a list', async () => {
  const home = await mkdtemp(path.join(tmpdir(), 'fqtok-hf-'));
  try {
    await writeFile(path.join(home, 'token'), 'hf_from_login\n');
    const fromHome = loadConfig({ HF_HOME: home, HF_ENDPOINT: 'https://mirror.example/', HF_HUB_OFFLINE: 'yes', TORCH_HOME: '/t', FQ_PULL: 'fqgan-triple-ds16, training-weights' });
    assert.deepEqual(fromHome.hub, {
      endpoint: 'https://mirror.example',
      cacheDir: path.join(home, 'hub'),
      token: 'hf_from_login', // the file `huggingface-cli login` writes, when HF_TOKEN is not set
      offline: true,
      torchCheckpointsDir: '/t/hub/checkpoints',
    });
    assert.deepEqual(fromHome.pull, ['fqgan-triple-ds16', 'training-weights']);
    const explicit = loadConfig({ HF_HOME: home, HF_HUB_CACHE: '/cache', HF_TOKEN: 'hf_env', HF_HUB_OFFLINE: '0' });
    assert.deepEqual([explicit.hub.cacheDir, explicit.hub.token, explicit.hub.offline, explicit.hub.endpoint], ['/cache', 'hf_env', false, 'https://huggingface.co']);
    assert.deepEqual(loadConfig({}).pull, []);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
