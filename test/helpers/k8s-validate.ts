// Validates Kubernetes objects against the API's OpenAPI schemas with kubernetes-models (ajv validators
// generated from the Kubernetes OpenAPI document), and refuses fields the schemas do not know, as
// `kubectl apply` (strict field validation) and kubeconform -strict do.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: any };

type ModelClass = { prototype: { validate(this: unknown): void } };

async function modelClass(apiVersion: string, kind: string): Promise<ModelClass> {
  try {
    const module = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, ModelClass>;
    const model = module[kind];
    if (model) return model;
  } catch {
    // reported below
  }
  throw new Error(`no Kubernetes schema for ${apiVersion} ${kind}`);
}

/**
 * Runs the schema's validator on a view of the object that records which properties the validator
 * reads: it reads every property its schema declares and enumerates maps (labels, resource lists), so a
 * property it never read is one the schema does not have.
 */
function tracked(value: unknown, reads: WeakMap<object, Set<PropertyKey> | 'map'>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const target = value as object;
  return new Proxy(target, {
    get(obj, key, receiver) {
      const seen = reads.get(obj);
      if (seen !== 'map') reads.set(obj, (seen ?? new Set()).add(key));
      return tracked(Reflect.get(obj, key, receiver), reads);
    },
    ownKeys(obj) {
      reads.set(obj, 'map');
      return Reflect.ownKeys(obj);
    },
  });
}

function unknownFields(value: unknown, reads: WeakMap<object, Set<PropertyKey> | 'map'>, at: string, out: string[]): string[] {
  if (value === null || typeof value !== 'object') return out;
  const seen = reads.get(value);
  for (const [key, child] of Object.entries(value)) {
    const where = Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`;
    if (!Array.isArray(value) && seen !== 'map' && !seen?.has(key)) out.push(where);
    else unknownFields(child, reads, where, out);
  }
  return out;
}

/** Throws one error naming every schema violation and unknown field of `object`. */
export async function validateObject(object: K8sObject, where: string): Promise<void> {
  const model = await modelClass(object.apiVersion, object.kind);
  const reads = new WeakMap<object, Set<PropertyKey> | 'map'>();
  const data = structuredClone(object);
  try {
    model.prototype.validate.call(tracked(data, reads));
  } catch (err) {
    throw new Error(`${where}: ${object.kind} ${object.metadata?.name}: ${(err as Error).message}`);
  }
  const unknown = unknownFields(data, reads, '', []);
  if (unknown.length) throw new Error(`${where}: ${object.kind} ${object.metadata.name}: unknown fields ${unknown.join(', ')}`);
}

export async function readObjects(file: string): Promise<K8sObject[]> {
  const docs = parseAllDocuments(await readFile(file, 'utf8'));
  return docs.map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as K8sObject;
  }).filter((o) => o !== null);
}

/**
 * The objects a kustomization makes. Only `resources` (files and folders with their own kustomization)
 * is understood, and any other field is refused, so that what is validated is what kustomize renders.
 */
export async function renderKustomization(dir: string): Promise<K8sObject[]> {
  const [spec] = await readObjects(path.join(dir, 'kustomization.yaml'));
  const extra = Object.keys(spec ?? {}).filter((k) => !['apiVersion', 'kind', 'resources'].includes(k));
  if (extra.length) throw new Error(`${dir}/kustomization.yaml: only resources are supported here, not ${extra.join(', ')}`);
  const out: K8sObject[] = [];
  for (const resource of (spec?.resources as string[] | undefined) ?? []) {
    const target = path.join(dir, resource);
    out.push(...(resource.endsWith('.yaml') ? await readObjects(target) : await renderKustomization(target)));
  }
  return out;
}
