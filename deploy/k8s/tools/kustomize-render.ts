import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * A small renderer of the kustomize features deploy/k8s uses, so a test can see the objects
 * `kubectl apply -k` would send, with no kubectl or kustomize binary. It follows kustomize
 * v5's semantics for exactly these features and throws on anything else (an unknown field, a
 * patch list it cannot merge, a patch that matches nothing), so a manifest change that needs
 * more than this renders as an error, never as something kustomize would not produce.
 *
 * Order, as kustomize's: a kustomization's resources (a folder is rendered whole, first), then
 * its components in order (each adds its resources, runs its generators, then its
 * transformers on everything accumulated so far), then its own generators, then its own
 * transformers (patches, namespace, labels, images). At the very end, once: the hash suffix of
 * generated ConfigMaps, and the references to them renamed.
 *
 * Supported: resources, components, namespace, labels (pairs; metadata only),
 * configMapGenerator (envs, files, literals; behavior create/merge; options labels,
 * annotations, disableNameSuffixHash), images (newName, newTag, digest), patches (path or
 * patch; strategic merge by apiVersion, kind and name; `$patch: delete`; lists merged by name
 * for containers, initContainers, env, volumes).
 */

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  labels?: { pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }[];
  resources?: string[];
  components?: string[];
  configMapGenerator?: ConfigMapGenerator[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  patches?: { path?: string; patch?: string; target?: unknown; options?: unknown }[];
}

interface ConfigMapGenerator {
  name: string;
  behavior?: 'create' | 'merge' | 'replace';
  envs?: string[];
  files?: string[];
  literals?: string[];
  options?: { labels?: Record<string, string>; annotations?: Record<string, string>; disableNameSuffixHash?: boolean };
}

/** One rendered object, and for a generated ConfigMap its generator's name (before the hash). */
interface Item {
  object: K8sObject;
  generated?: { name: string; hash: boolean };
}

const KUSTOMIZATION_FIELDS = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'labels',
  'resources',
  'components',
  'configMapGenerator',
  'images',
  'patches',
]);

// Kinds this project uses that are not namespaced (kustomize's namespace transformer skips them).
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition']);

// Lists that strategic merge patches merge element by element on `name` (the API's patchMergeKey).
const MERGE_BY_NAME = new Set(['containers', 'initContainers', 'env', 'volumes']);

function fail(where: string, message: string): never {
  throw new Error(`kustomize-render: ${where}: ${message}`);
}

function readKustomization(dir: string): Kustomization {
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
    .map((name) => join(dir, name))
    .find((path) => existsSync(path));
  if (!file) {
    fail(dir, 'no kustomization.yaml');
  }
  const parsed = parseYaml(file)[0] as Kustomization | undefined;
  if (!parsed) {
    fail(file, 'empty');
  }
  for (const key of Object.keys(parsed)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) {
      fail(file, `unsupported field ${key}`);
    }
  }
  return parsed;
}

function parseYaml(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => {
      if (document.errors.length > 0) {
        fail(file, document.errors.map((error) => error.message).join('; '));
      }
      return document.toJS() as unknown;
    })
    .filter((value) => value !== null && value !== undefined);
}

function asObject(value: unknown, where: string): K8sObject {
  const object = value as K8sObject;
  if (!object?.apiVersion || !object.kind || !object.metadata?.name) {
    fail(where, 'every resource needs apiVersion, kind and metadata.name');
  }
  return object;
}

/** Resources, components, own generators, own transformers: one kustomization or component. */
function build(dir: string, expectedKind: 'Kustomization' | 'Component', inherited: Item[] = []): Item[] {
  const kustomization = readKustomization(dir);
  const kind = kustomization.kind ?? 'Kustomization';
  if (kind !== expectedKind) {
    fail(dir, `expected a ${expectedKind}, found a ${kind}`);
  }
  let items = [...inherited];
  for (const entry of kustomization.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) {
      fail(dir, `resource ${entry} does not exist`);
    }
    if (statSync(path).isDirectory()) {
      items.push(...build(path, 'Kustomization'));
    } else {
      items.push(...parseYaml(path).map((value) => ({ object: asObject(value, path) })));
    }
  }
  for (const entry of kustomization.components ?? []) {
    items = build(resolve(dir, entry), 'Component', items);
  }
  for (const generator of kustomization.configMapGenerator ?? []) {
    items = generateConfigMap(dir, generator, items);
  }
  for (const patch of kustomization.patches ?? []) {
    items = applyPatch(dir, patch, items);
  }
  if (kustomization.namespace) {
    const namespace = kustomization.namespace;
    for (const { object } of items) {
      if (!CLUSTER_SCOPED.has(object.kind)) {
        object.metadata.namespace = namespace;
      }
    }
  }
  for (const label of kustomization.labels ?? []) {
    if (label.includeSelectors || label.includeTemplates) {
      fail(dir, 'labels with includeSelectors or includeTemplates are not supported');
    }
    for (const { object } of items) {
      object.metadata.labels = { ...object.metadata.labels, ...label.pairs };
    }
  }
  for (const image of kustomization.images ?? []) {
    for (const { object } of items) {
      for (const container of podContainers(object)) {
        container.image = retag(container.image, image);
      }
    }
  }
  return items;
}

function retag(current: string, image: NonNullable<Kustomization['images']>[number]): string {
  // name[:tag][@digest]; a registry port (host:5000/name) is not a tag.
  const at = current.indexOf('@');
  const withoutDigest = at === -1 ? current : current.slice(0, at);
  const colon = withoutDigest.lastIndexOf(':');
  const hasTag = colon > withoutDigest.lastIndexOf('/');
  const name = hasTag ? withoutDigest.slice(0, colon) : withoutDigest;
  if (name !== image.name) {
    return current;
  }
  const tag = image.newTag ?? (hasTag ? withoutDigest.slice(colon + 1) : undefined);
  const newName = image.newName ?? name;
  if (image.digest) {
    return `${newName}@${image.digest}`;
  }
  return tag === undefined ? newName : `${newName}:${tag}`;
}

function podSpec(object: K8sObject): JsonObject | undefined {
  const spec = object.spec as JsonObject | undefined;
  const template = spec?.template as JsonObject | undefined;
  return template?.spec as JsonObject | undefined;
}

function podContainers(object: K8sObject): { image: string; [key: string]: unknown }[] {
  const spec = podSpec(object);
  if (!spec) {
    return [];
  }
  return [...((spec.initContainers ?? []) as []), ...((spec.containers ?? []) as [])];
}

function parseKeyValue(line: string, where: string): [string, string] {
  const equals = line.indexOf('=');
  if (equals <= 0) {
    fail(where, `expected KEY=VALUE, got ${JSON.stringify(line)}`);
  }
  const [key, value] = [line.slice(0, equals), line.slice(equals + 1)];
  // kustomize keeps quotes as part of the value; refuse them rather than guess what was meant.
  if (/^\s|\s$/.test(key) || /^["']/.test(value)) {
    fail(where, `keep KEY=VALUE plain (no spaces around the key, no quotes): ${JSON.stringify(line)}`);
  }
  return [key, value];
}

function generateConfigMap(dir: string, generator: ConfigMapGenerator, items: Item[]): Item[] {
  const where = `${dir} configMapGenerator ${generator.name}`;
  const data: Record<string, string> = {};
  const add = (key: string, value: string) => {
    if (Object.hasOwn(data, key)) {
      fail(where, `key ${key} given twice`);
    }
    data[key] = value;
  };
  for (const file of generator.envs ?? []) {
    for (const raw of readFileSync(resolve(dir, file), 'utf8').split('\n')) {
      const line = raw.trim();
      if (line !== '' && !line.startsWith('#')) {
        add(...parseKeyValue(line, `${where} ${file}`));
      }
    }
  }
  for (const entry of generator.files ?? []) {
    const equals = entry.indexOf('=');
    const [key, path] = equals === -1 ? [basename(entry), entry] : [entry.slice(0, equals), entry.slice(equals + 1)];
    add(key, readFileSync(resolve(dir, path), 'utf8'));
  }
  for (const literal of generator.literals ?? []) {
    add(...parseKeyValue(literal, where));
  }
  const behavior = generator.behavior ?? 'create';
  const existing = items.find((item) => item.object.kind === 'ConfigMap' && item.generated?.name === generator.name);
  if (behavior === 'create') {
    if (existing) {
      fail(where, 'already generated (use behavior: merge)');
    }
    const metadata: K8sObject['metadata'] = { name: generator.name };
    if (generator.options?.labels) {
      metadata.labels = { ...generator.options.labels };
    }
    if (generator.options?.annotations) {
      metadata.annotations = { ...generator.options.annotations };
    }
    const object: K8sObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: sortKeys(data) };
    return [...items, { object, generated: { name: generator.name, hash: !generator.options?.disableNameSuffixHash } }];
  }
  if (behavior !== 'merge' || !existing) {
    fail(where, behavior === 'merge' ? 'nothing to merge into' : `behavior ${behavior} is not supported`);
  }
  if (generator.options) {
    fail(where, 'options on a merge are not supported');
  }
  existing.object.data = sortKeys({ ...(existing.object.data as Record<string, string>), ...data });
  return items;
}

function sortKeys(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function applyPatch(dir: string, entry: NonNullable<Kustomization['patches']>[number], items: Item[]): Item[] {
  if (entry.target !== undefined || entry.options !== undefined) {
    fail(dir, 'patches with target or options are not supported (name the object in the patch)');
  }
  const where = `${dir} patch ${entry.path ?? '(inline)'}`;
  const documents = entry.path
    ? parseYaml(resolve(dir, entry.path))
    : parseAllDocuments(entry.patch ?? '').map((document) => document.toJS() as unknown);
  let result = items;
  for (const document of documents) {
    const patch = { ...(document as JsonObject) };
    const matches = result.filter(
      (item) =>
        item.object.apiVersion === patch.apiVersion &&
        item.object.kind === patch.kind &&
        (item.generated?.name ?? item.object.metadata.name) === (patch.metadata as JsonObject | undefined)?.name,
    );
    if (matches.length !== 1) {
      fail(where, `matches ${matches.length} objects, not one`);
    }
    const target = matches[0] as Item;
    if (patch.$patch === 'delete') {
      result = result.filter((item) => item !== target);
      continue;
    }
    target.object = merge(target.object as unknown as JsonObject, patch, where) as unknown as K8sObject;
  }
  return result;
}

/** Strategic merge of `patch` into `base` (maps recursively, null deletes, lists as above). */
function merge(base: JsonObject, patch: JsonObject, where: string, path: string[] = []): JsonObject {
  const result: JsonObject = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) {
      fail(where, `directive ${key} at ${path.join('.')} is not supported`);
    }
    const here = [...path, key];
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value)) {
      result[key] = mergeList((base[key] ?? []) as Json[], value, where, here);
    } else if (typeof value === 'object' && typeof base[key] === 'object' && base[key] !== null) {
      result[key] = merge(base[key] as JsonObject, value, where, here);
    } else {
      result[key] = value;
    }
  }
  return result;
}

function mergeList(base: Json[], patch: Json[], where: string, path: string[]): Json[] {
  const key = path.at(-1) ?? '';
  if (!MERGE_BY_NAME.has(key)) {
    fail(where, `list ${path.join('.')}: this renderer merges only ${[...MERGE_BY_NAME].join(', ')}`);
  }
  const result = [...base];
  for (const element of patch) {
    const name = (element as JsonObject).name;
    const index = result.findIndex((candidate) => (candidate as JsonObject).name === name);
    if (index === -1) {
      result.push(element);
    } else {
      result[index] = merge(result[index] as JsonObject, element as JsonObject, where, [...path, String(name)]);
    }
  }
  return result;
}

/**
 * kustomize's hash of a generated ConfigMap (api/hasher): SHA-256 of Go's json.Marshal of
 * {"data", "kind", "name"} (keys sorted, and Go escapes <, > and & in strings), the first ten
 * hex digits with 0, 1, 3, a and e mapped to g, h, k, m and t (no vowels, no look-alikes).
 */
export function configMapHash(name: string, data: Record<string, string> | undefined): string {
  const encoded = JSON.stringify({ data: data === undefined ? '' : sortKeys(data), kind: 'ConfigMap', name })
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  const hex = createHash('sha256').update(encoded).digest('hex').slice(0, 10);
  const map: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return [...hex].map((char) => map[char] ?? char).join('');
}

/** Renames the references kustomize's nameReference updates for ConfigMaps in pod templates. */
function renameConfigMapReferences(object: K8sObject, renames: Map<string, string>): void {
  const spec = podSpec(object);
  if (!spec) {
    return;
  }
  const rename = (holder: JsonObject | undefined) => {
    const name = holder?.name;
    if (holder && typeof name === 'string' && renames.has(name)) {
      holder.name = renames.get(name) as string;
    }
  };
  for (const volume of (spec.volumes ?? []) as JsonObject[]) {
    rename(volume.configMap as JsonObject | undefined);
    for (const source of ((volume.projected as JsonObject | undefined)?.sources ?? []) as JsonObject[]) {
      rename(source.configMap as JsonObject | undefined);
    }
  }
  for (const container of podContainers(object) as unknown as JsonObject[]) {
    for (const from of (container.envFrom ?? []) as JsonObject[]) {
      rename(from.configMapRef as JsonObject | undefined);
    }
    for (const variable of (container.env ?? []) as JsonObject[]) {
      rename((variable.valueFrom as JsonObject | undefined)?.configMapKeyRef as JsonObject | undefined);
    }
  }
}

/** What `kubectl kustomize <dir>` would print, as objects. */
export function renderKustomization(dir: string): K8sObject[] {
  const items = build(resolve(dir), 'Kustomization');
  const renames = new Map<string, string>();
  for (const item of items) {
    if (item.generated?.hash) {
      const name = `${item.generated.name}-${configMapHash(item.object.metadata.name, item.object.data as Record<string, string>)}`;
      renames.set(item.object.metadata.name, name);
      item.object.metadata.name = name;
    }
  }
  for (const item of items) {
    renameConfigMapReferences(item.object, renames);
  }
  return items.map((item) => item.object);
}
