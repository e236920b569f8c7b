// Canonical JSON: 2-space indent, trailing newline, and a stable key order
// taken from the file's schema ("$schema" first, then the schema's own
// property order, then any other keys sorted). The same state always gives the
// same bytes, so a transaction that changes nothing writes nothing, and a
// person's diff shows only what changed.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, unknown>;

function resolve(schema: unknown, root: Schema): Schema | null {
  let s = schema as Schema | undefined;
  for (let depth = 0; s && typeof s === 'object' && typeof s.$ref === 'string' && depth < 16; depth++) {
    const ref = s.$ref as string;
    if (!ref.startsWith('#/')) return null;
    let target: unknown = root;
    for (const part of ref.slice(2).split('/')) target = (target as Schema | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    s = target as Schema | undefined;
  }
  return s && typeof s === 'object' ? s : null;
}

/** The branch of a schema that describes objects (or arrays), looking through anyOf/oneOf/allOf. */
function shapeOf(schema: unknown, root: Schema, want: 'object' | 'array'): Schema | null {
  const s = resolve(schema, root);
  if (!s) return null;
  if (want === 'object' && (s.properties || s.additionalProperties || s.patternProperties)) return s;
  if (want === 'array' && s.items) return s;
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const list = s[key];
    if (Array.isArray(list)) {
      for (const branch of list) {
        const found = shapeOf(branch, root, want);
        if (found) return found;
      }
    }
  }
  return null;
}

function order(value: Json, schema: unknown, root: Schema): Json {
  if (Array.isArray(value)) {
    const items = shapeOf(schema, root, 'array')?.items;
    return value.map((v) => order(v, items, root));
  }
  if (value === null || typeof value !== 'object') return value;
  const s = shapeOf(schema, root, 'object');
  const props = (s?.properties ?? {}) as Schema;
  const known = Object.keys(props);
  const keys = Object.keys(value);
  const first = keys.includes('$schema') ? ['$schema'] : [];
  // Own properties only: a label named "constructor" is data, not Object.prototype.
  const has = (o: object, k: string) => Object.hasOwn(o, k);
  const inSchema = known.filter((k) => k !== '$schema' && has(value, k));
  const rest = keys.filter((k) => k !== '$schema' && !has(props, k)).sort();
  const out: { [k: string]: Json } = {};
  for (const k of [...first, ...inSchema, ...rest]) {
    const v = value[k];
    if (v === undefined) continue;
    const childSchema = has(props, k) ? props[k] : (s?.additionalProperties as unknown);
    put(out, k, order(v, childSchema, root));
  }
  return out;
}

export function canonicalJson(value: unknown, schema?: Schema | null): string {
  const ordered = schema ? order(value as Json, schema, schema) : sortAll(value as Json);
  return JSON.stringify(ordered, null, 2) + '\n';
}

function sortAll(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortAll);
  if (value === null || typeof value !== 'object') return value;
  const out: { [k: string]: Json } = {};
  const keys = Object.keys(value).sort((a, b) => (a === '$schema' ? -1 : b === '$schema' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  for (const k of keys) if (value[k] !== undefined) put(out, k, sortAll(value[k]!));
  return out;
}

/** Assignment that keeps a "__proto__" key as a key instead of setting the prototype. */
function put(obj: { [k: string]: Json }, key: string, v: Json): void {
  Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
}
