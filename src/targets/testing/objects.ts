// A cluster's objects for resolver and reconciler tests: lists given per resource kind, one namespace
// (lookups go by name alone).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ResourceKind, TargetObjects } from '../kinds';

export function objectsOf(lists: Partial<Record<ResourceKind, readonly KubernetesObject[]>>): TargetObjects {
  return {
    get: (kind, _namespace, name) => lists[kind]?.find((o) => o.metadata?.name === name),
    list: (kind) => lists[kind] ?? [],
  };
}
