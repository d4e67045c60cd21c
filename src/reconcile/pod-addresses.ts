// Which pod has a client's address: an index of pod IPs kept from the pod watch cache's events, so
// that telling a client's pod costs a map lookup, never an API call per connection.
//
// Guarantees
// - An address is a pod's only while exactly one pod claims it: a Running pod, not on the host
//   network, with the address in status.podIPs (or status.podIP). A pod on the host network has the
//   node's address; two pods claiming one address (a stale pod beside its successor) are ambiguous;
//   both are no pod.
// - update() says which namespaces saw a change that matters to who may connect (a pod's addresses,
//   its labels, or a claim on one of its addresses by another pod), so only the PortForwards that
//   look at those namespaces run again; a pod's status updates that change neither cost nothing.
import type { V1Pod } from '@kubernetes/client-node';
import { keyOf, parseKey } from '../api/key';

/** The addresses a pod connects from, as far as the operator trusts them; none for no pod. */
export function podClientAddresses(pod: V1Pod): string[] {
  if (pod.status?.phase !== 'Running' || pod.spec?.hostNetwork) return [];
  const ips = pod.status.podIPs?.map((p) => p.ip) ?? (pod.status.podIP ? [pod.status.podIP] : []);
  return [...new Set(ips.filter(Boolean).map(canonicalAddress))].sort();
}

/** An address as the index keys it: an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) as IPv4, lower case. */
export function canonicalAddress(address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1] : a;
}

interface Entry {
  addresses: string[];
  /** The pod's labels, canonical: a label change may move it into or out of a selector. */
  labels: string;
}

export class PodAddressIndex {
  private readonly byPod = new Map<string, Entry>();
  private readonly byAddress = new Map<string, Set<string>>();

  /**
   * Applies pod `namespace/name` as it is now (undefined: deleted). Returns the namespaces whose
   * clients may have changed: the pod's own and those of other pods claiming one of its addresses,
   * old or new; empty when nothing that matters changed.
   */
  update(namespace: string, name: string, pod: V1Pod | undefined): string[] {
    const key = keyOf({ namespace, name });
    const before = this.byPod.get(key);
    const addresses = pod ? podClientAddresses(pod) : [];
    const after: Entry | undefined =
      addresses.length > 0 ? { addresses, labels: canonicalLabels(pod?.metadata?.labels) } : undefined;
    if (sameEntry(before, after)) return [];
    const touched = new Set([...(before?.addresses ?? []), ...addresses]);
    for (const a of before?.addresses ?? []) this.release(a, key);
    if (after) {
      this.byPod.set(key, after);
      for (const a of after.addresses) {
        let pods = this.byAddress.get(a);
        if (!pods) this.byAddress.set(a, (pods = new Set()));
        pods.add(key);
      }
    } else {
      this.byPod.delete(key);
    }
    const namespaces = new Set([namespace]);
    for (const a of touched) for (const other of this.byAddress.get(a) ?? []) namespaces.add(nsOf(other));
    return [...namespaces];
  }

  /** The pod (`namespace/name`) that alone claims `address`; undefined for none or several. */
  podAt(address: string): string | undefined {
    const pods = this.byAddress.get(canonicalAddress(address));
    return pods?.size === 1 ? pods.values().next().value : undefined;
  }

  private release(address: string, key: string): void {
    const pods = this.byAddress.get(address);
    pods?.delete(key);
    if (pods?.size === 0) this.byAddress.delete(address);
  }
}

function canonicalLabels(labels: Record<string, string> | undefined): string {
  return JSON.stringify(Object.entries(labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameEntry(a: Entry | undefined, b: Entry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.labels === b.labels && a.addresses.join() === b.addresses.join();
}

function nsOf(key: string): string {
  return parseKey(key).namespace;
}
