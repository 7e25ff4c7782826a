// The Dockerfile, checked without a container engine: what it copies exists and is not ignored, local
// state stays out of the build context, and each final image runs node directly as an unprivileged user.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/server.ts';

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  .replace(/\\\n/g, ' ') // join continuation lines
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));
const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));

/** Instructions per stage name, in order. */
function stages(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of dockerfile) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.set(from[1] ?? `stage${out.size}`, (current = []));
    current.push(line);
  }
  return out;
}

test('every path copied from the build context exists and is not excluded by .dockerignore', () => {
  const sources = dockerfile
    .filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.split(/\s+/).slice(1).filter((word) => !word.startsWith('--')).slice(0, -1));
  assert.ok(sources.length >= 5, `found only ${sources.join(', ')}`);
  for (const source of sources) {
    assert.ok(existsSync(path.join(ROOT, source)), `COPY ${source}: no such path`);
    const top = source.split('/')[0]!;
    assert.ok(!ignored.includes(source) && !ignored.includes(top), `COPY ${source}, but .dockerignore excludes it`);
  }
});

test('.dockerignore keeps local state and installed packages out of the context', () => {
  for (const entry of ['node_modules', 'data', '.git']) assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
});

test('cpu and gpu images: non-root, volumes for models and data, /readyz health check, node under tini in exec form', () => {
  const all = stages();
  for (const target of ['cpu', 'gpu']) {
    const lines = all.get(target);
    assert.ok(lines, `no stage named ${target}`);
    const find = (instruction: string) => lines.filter((l) => l.toUpperCase().startsWith(`${instruction} `));
    assert.deepEqual(find('USER'), ['USER fqtok'], `${target}: USER`);
    assert.match(find('VOLUME').join(), /"\/models", "\/data"/, `${target}: VOLUME`);
    assert.match(find('HEALTHCHECK').join(), /\/readyz/, `${target}: HEALTHCHECK`);
    const entrypoint = JSON.parse(find('ENTRYPOINT')[0]!.slice('ENTRYPOINT '.length)) as string[];
    assert.deepEqual(entrypoint.slice(0, 3), ['/usr/bin/tini', '--', 'node'], `${target}: ENTRYPOINT`);
  }
  const gpu = all.get('gpu')!.join('\n');
  assert.match(gpu, /NVIDIA_DRIVER_CAPABILITIES=\S*graphics/);
  assert.match(gpu, /libvulkan1/);
  // What libGLX_nvidia.so.0 (the Vulkan driver) links against, and what Triton needs for FQ_TORCH_COMPILE=1.
  for (const pkg of ['libglvnd0', 'libx11-6', 'libxext6', 'gcc', 'libc6-dev', 'python3-dev']) {
    assert.match(gpu, new RegExp(`apt-get install [^&]*\\s${pkg.replace('+', '\\+')}\\s`), `gpu: ${pkg}`);
  }
  assert.match(all.get('node-deps-cuda')!.join('\n'), /ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules\/onnxruntime-node\/script\/install\.js/);
});

test('both images convert what they pull: a Python with torch as FQ_PYTHON, the Hub and torch caches in the /data volume', () => {
  const all = stages();
  for (const target of ['cpu', 'gpu']) {
    const lines = all.get(target)!.join('\n');
    assert.match(lines, /pip install [^&]*--index-url "\$\{TORCH_(CPU_)?INDEX_URL\}" torch/, `${target}: torch`);
    assert.match(lines, /FQ_PYTHON=\/opt\/venv\/bin\/python/, `${target}: FQ_PYTHON`);
    assert.match(lines, /HF_HOME=\/data\/huggingface/, `${target}: HF_HOME`);
    assert.match(lines, /TORCH_HOME=\/data\/torch/, `${target}: TORCH_HOME`);
  }
  assert.match(dockerfile.join('\n'), /ARG TORCH_CPU_INDEX_URL=https:\/\/download\.pytorch\.org\/whl\/cpu/);
});

test('the gpu image fails to build when the CUDA EP lacks a library (only the host driver\'s libcuda may be absent)', () => {
  const lines = stages().get('gpu')!;
  const copy = lines.findIndex((l) => /^COPY --from=node-deps-cuda /.test(l));
  const check = lines.findIndex((l) => /^RUN .*ldd libonnxruntime_providers_cuda\.so/.test(l));
  assert.ok(copy >= 0 && check > copy, 'the ldd check runs on the copied CUDA EP, in the CUDA image');
  assert.match(lines[check]!, /grep 'not found' \S+ \| grep -v 'libcuda\\\.so\\\.1 '; then .* exit 1; fi/);
});
