// The key of a namespaced object (a PortForward, in the work queue, the relay's sessions, metrics and
// logs): `namespace/name`, made and read here only. A branded string, so that a Map or a Set keeps
// plain string semantics and the compiler still tells a key from any other string.

export type ObjectKey = string & { readonly __objectKey: unique symbol };

export interface NamespacedName {
  namespace: string;
  name: string;
}

type HasMetadata = { metadata?: { namespace?: string; name?: string } };

/** The key of an object (by its metadata) or of a namespace and a name. */
export function keyOf(obj: HasMetadata | NamespacedName): ObjectKey {
  const n: Partial<NamespacedName> = 'metadata' in obj ? (obj.metadata ?? {}) : (obj as NamespacedName);
  return `${n.namespace ?? ''}/${n.name ?? ''}` as ObjectKey;
}

/** The namespace and name a key names; throws a RangeError on a string that is not a key. */
export function parseKey(key: string): NamespacedName {
  const i = key.indexOf('/');
  if (i < 0 || key.indexOf('/', i + 1) >= 0) throw new RangeError(`"${key}" is not a namespace/name key`);
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
