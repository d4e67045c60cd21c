// metav1.LabelSelector, read as Kubernetes reads it: what a service, a workload, a `selector` target and
// allowedClients' pod and namespace selectors match, and how kubectl writes one.
import type { V1LabelSelector } from '@kubernetes/client-node';
import type { LabelSelector } from '../api/v1alpha1';

/** Label selector semantics of metav1.LabelSelector; an empty selector matches everything. */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  selector: V1LabelSelector | LabelSelector,
): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(l[e.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(l[e.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an unknown operator matches nothing, as in Kubernetes
    }
  }
  return true;
}

export function selectorString(s: LabelSelector): string {
  const parts = Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',');
}
