// The Kubernetes manifests in deploy/k8s (issue 22 item 3): every object validates against the Kubernetes
// API schemas (kubernetes-models) with no unknown field, each overlay renders to a consistent whole, and
// `kubectl kustomize` renders the same objects where a kubectl is installed. No cluster is involved.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { readObjects, renderKustomization, validateObject, type K8sObject } from './helpers/k8s-validate.ts';
import { ROOT } from './helpers/server.ts';

const K8S = path.join(ROOT, 'deploy', 'k8s');
const OVERLAYS = ['cpu', 'gpu'];

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(p)));
    else if (/\.ya?ml$/.test(entry.name) && entry.name !== 'kustomization.yaml') out.push(p);
  }
  return out.sort();
}

const find = (objects: K8sObject[], kind: string, name?: string) => objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name));
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const podTemplates = (objects: K8sObject[]) => objects.filter((o) => ['Deployment', 'StatefulSet', 'Job'].includes(o.kind)).map((o) => ({ owner: o, template: o.spec.template }));
const env = (container: any, name: string) => container.env?.find((e: any) => e.name === name)?.value;

describe('the validator', () => {
  test('refuses what the API server would: an unknown field, a wrong type, a missing required field', async () => {
    const good: K8sObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80 }] } };
    await validateObject(good, 'inline');
    await assert.rejects(validateObject({ ...good, spec: { ports: [{ port: 80, targetPrt: 8080 }] } }, 'inline'), /unknown fields \.spec\.ports\[0\]\.targetPrt/);
    await assert.rejects(validateObject({ ...good, spec: { ports: [{ port: 'eighty' }] } }, 'inline'), /must be integer/);
    await assert.rejects(validateObject({ ...good, spec: { ports: [{}] } }, 'inline'), /required property/);
    await assert.rejects(validateObject({ ...good, kind: 'Servise' }, 'inline'), /no Kubernetes schema/);
  });
});

describe('deploy/k8s', () => {
  test('every object in every file validates against the Kubernetes schemas (the tokenize Job too, when present)', async () => {
    const files = await yamlFiles(K8S);
    assert.ok(files.length >= 8, files.join(', '));
    for (const file of files) {
      const objects = await readObjects(file);
      assert.ok(objects.length > 0, `${file} holds objects`);
      for (const object of objects) await validateObject(object, path.relative(ROOT, file));
    }
  });

  for (const overlay of OVERLAYS) {
    describe(`overlays/${overlay}`, () => {
      let objects: K8sObject[];

      test('renders: replicas Deployment, admin StatefulSet of one, Services, HPA, PDB, shared models volume', async () => {
        objects = await renderKustomization(path.join(K8S, 'overlays', overlay));
        for (const object of objects) await validateObject(object, `overlays/${overlay}`);
        const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
        assert.equal(new Set(names).size, names.length, `no object twice: ${names}`);
        for (const wanted of ['Deployment/fqtok', 'StatefulSet/fqtok-admin', 'Service/fqtok', 'Service/fqtok-admin', 'HorizontalPodAutoscaler/fqtok', 'PodDisruptionBudget/fqtok', 'PersistentVolumeClaim/fqtok-models', 'ConfigMap/fqtok-settings']) {
          assert.ok(names.includes(wanted), `${wanted} in ${names}`);
        }
        assert.equal(find(objects, 'StatefulSet', 'fqtok-admin')[0]!.spec.replicas, 1, 'one admin instance: SQLite has one writer');
        assert.deepEqual(find(objects, 'PersistentVolumeClaim', 'fqtok-models')[0]!.spec.accessModes, ['ReadWriteMany']);
      });

      test('references hold: selectors, the HPA target, claims, config maps, the StatefulSet\'s Service', () => {
        const templates = podTemplates(objects);
        for (const service of find(objects, 'Service')) {
          assert.ok(templates.some((t) => matches(service.spec.selector, t.template.metadata.labels)), `Service ${service.metadata.name} selects pods`);
        }
        const replicas = find(objects, 'Deployment', 'fqtok')[0]!;
        const admin = find(objects, 'StatefulSet', 'fqtok-admin')[0]!;
        assert.ok(!matches(find(objects, 'Service', 'fqtok')[0]!.spec.selector, admin.spec.template.metadata.labels), 'the serving Service does not send to the admin instance');
        assert.ok(matches(find(objects, 'PodDisruptionBudget')[0]!.spec.selector.matchLabels, replicas.spec.template.metadata.labels));
        const hpa = find(objects, 'HorizontalPodAutoscaler')[0]!;
        assert.equal(find(objects, hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name).length, 1);
        assert.deepEqual(hpa.spec.metrics.map((m: any) => m.type), ['Pods', 'Resource'], 'the queue metric, then CPU');
        assert.equal(hpa.spec.metrics[0].pods.metric.name, 'fqtok_views_in_flight');
        assert.equal(admin.spec.serviceName, 'fqtok-admin');
        for (const { owner, template } of templates) {
          const claims = (template.spec.volumes ?? []).map((v: any) => v.persistentVolumeClaim?.claimName).filter(Boolean);
          for (const claim of claims) assert.equal(find(objects, 'PersistentVolumeClaim', claim).length, 1, `${owner.metadata.name}: claim ${claim}`);
          for (const container of [...template.spec.containers, ...(template.spec.initContainers ?? [])]) {
            for (const from of container.envFrom ?? []) assert.equal(find(objects, 'ConfigMap', from.configMapRef.name).length, 1);
            for (const mount of container.volumeMounts ?? []) {
              const declared = [...(template.spec.volumes ?? []), ...(owner.spec.volumeClaimTemplates ?? []).map((t: any) => t.metadata)];
              assert.ok(declared.some((v: any) => v.name === mount.name), `${owner.metadata.name}: volume ${mount.name}`);
            }
          }
        }
      });

      test('roles, probes, drain and GPUs', () => {
        const settings = find(objects, 'ConfigMap', 'fqtok-settings')[0]!.data;
        const replicas = find(objects, 'Deployment', 'fqtok')[0]!;
        const admin = find(objects, 'StatefulSet', 'fqtok-admin')[0]!;
        const [serving] = replicas.spec.template.spec.containers;
        const [adminContainer] = admin.spec.template.spec.containers;
        assert.equal(env(serving, 'FQ_ROLE'), 'replica');
        assert.equal(env(adminContainer, 'FQ_ROLE'), 'admin');
        assert.equal(adminContainer.env.find((e: any) => e.name === 'FQ_ADMIN_TOKEN').valueFrom.secretKeyRef.name, 'fqtok-admin-token');
        assert.ok(serving.volumeMounts.find((m: any) => m.mountPath === settings.FQ_MODELS_DIR).readOnly, 'replicas mount the models read-only');
        assert.ok(!adminContainer.volumeMounts.find((m: any) => m.mountPath === settings.FQ_MODELS_DIR).readOnly, 'the admin instance publishes into it');
        for (const c of [serving, adminContainer]) {
          assert.equal(c.readinessProbe.httpGet.path, '/readyz');
          assert.equal(c.livenessProbe.httpGet.path, '/healthz');
          assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
          if (overlay === 'gpu') assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
          else assert.equal(c.resources.limits['nvidia.com/gpu'], undefined);
        }
        // The pause before SIGTERM plus the service's own grace must end before the kubelet's SIGKILL.
        const pause = Number(serving.lifecycle.preStop.exec.command.at(-1));
        assert.ok(pause > 0);
        assert.ok(replicas.spec.template.spec.terminationGracePeriodSeconds > pause + Number(settings.FQ_SHUTDOWN_GRACE_MS) / 1000);
        assert.equal(replicas.spec.strategy.rollingUpdate.maxUnavailable, 0);
      });
    });
  }

  test('kubectl kustomize renders the same objects (where kubectl is installed)', async (t) => {
    const kubectl = await promisify(execFile)('kubectl', ['version', '--client']).then(
      (r) => r.stdout,
      () => undefined,
    );
    if (!kubectl || !/Kustomize Version: v[4-9]/.test(kubectl)) return t.skip('no kubectl with kustomize v4 or later here');
    for (const overlay of OVERLAYS) {
      const dir = path.join(K8S, 'overlays', overlay);
      const { stdout } = await promisify(execFile)('kubectl', ['kustomize', dir], { maxBuffer: 16 << 20 });
      const rendered = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject);
      const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
      const sorted = (list: K8sObject[]) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
      assert.deepEqual(sorted(rendered), sorted(await renderKustomization(dir)), overlay);
    }
  });
});
