// Who may connect to a PortForward's listeners, as addresses for the relay: spec.allowedClients read
// the way NetworkPolicy reads its peers, or by default the pods of the PortForward's own namespace,
// turned into the client addresses of the pods they select, from the watch caches. Pure: the caller
// passes the directory.
//
// Guarantees
// - A loopback-only listener (127.0.0.0/8, ::1) keeps the behaviour from before classes of clients
//   existed: allowedSourceRanges when set, else everyone; pods are not consulted.
// - Elsewhere: allowedClients set, its pods (and allowedSourceRanges, the relay's other list); only
//   allowedSourceRanges set, that alone; neither, the pods of the PortForward's namespace.
// - A peer with podSelector alone selects pods of the PortForward's namespace, namespaceSelector
//   alone every pod of the matching namespaces, both the matching pods of the matching namespaces;
//   an empty selector matches everything. A namespace the operator does not watch has no pods here.
// - Only addresses that exactly one pod claims count (PodAddressIndex); a pod on the host network
//   has none.
import type { V1Pod } from '@kubernetes/client-node';
import * as net from 'node:net';
import type { ClientPeer, PortForward } from '../api/v1alpha1';
import { podClientAddresses } from './pod-addresses';
import { matchesSelector } from '../targets/selector';
import { keyOf } from '../api/key';

/** What the access rules read from the watch caches. */
export interface ClientDirectory {
  /** A namespace's labels; undefined when the operator does not know the namespace. */
  namespaceLabels(name: string): Record<string, string> | undefined;
  /** The namespaces the operator knows. */
  namespaceNames(): string[];
  pods(namespace: string): ReadonlyArray<V1Pod>;
  /** The one pod (`namespace/name`) with this address; undefined for none or several. */
  podAt(address: string): string | undefined;
  /** Changes whenever an answer above may have changed; without it nothing is remembered. */
  version?(): number;
}

/** No pods, no namespaces. */
export const EMPTY_DIRECTORY: ClientDirectory = {
  namespaceLabels: () => undefined,
  namespaceNames: () => [],
  pods: () => [],
  podAt: () => undefined,
};

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether only this host can reach a listener on `address` (127.0.0.0/8, ::1 and their IPv4-mapped forms). */
export function isLoopbackOnly(address: string): boolean {
  if (address === 'localhost') return true;
  if (net.isIPv4(address)) return LOOPBACK.check(address, 'ipv4');
  return net.isIPv6(address) && LOOPBACK.check(address, 'ipv6');
}

/**
 * The peers whose pods may connect to a listener on `listenAddress`; undefined when pods are not
 * consulted (a loopback-only listener, or allowedSourceRanges alone).
 */
export function clientPeers(pf: PortForward, listenAddress: string): ClientPeer[] | undefined {
  if (isLoopbackOnly(listenAddress)) return undefined;
  if (pf.spec.allowedClients?.length) return pf.spec.allowedClients;
  if (pf.spec.allowedSourceRanges?.length) return undefined;
  return [{ podSelector: {} }];
}

/**
 * The client addresses of the pods `pf` admits on a listener on `listenAddress`, sorted; undefined
 * when pods are not consulted (the relay's allowedClientAddresses).
 */
export function admittedAddresses(
  pf: PortForward,
  listenAddress: string,
  dir: ClientDirectory,
): string[] | undefined {
  const peers = clientPeers(pf, listenAddress);
  if (!peers) return undefined;
  const out = new Set<string>();
  for (const peer of peers) {
    const namespaces = peer.namespaceSelector
      ? dir.namespaceNames().filter((n) => matchesSelector(dir.namespaceLabels(n), peer.namespaceSelector!))
      : [pf.metadata.namespace];
    for (const ns of namespaces) {
      for (const pod of dir.pods(ns)) {
        if (peer.podSelector && !matchesSelector(pod.metadata?.labels, peer.podSelector)) continue;
        const key = `${ns}/${pod.metadata?.name ?? ''}`;
        for (const a of podClientAddresses(pod)) if (dir.podAt(a) === key) out.add(a);
      }
    }
  }
  return [...out].sort();
}

/**
 * Whether a change to the pods of namespace `ns` (labelled `labels`) may change who may connect to
 * `pf`: its rule selects pods there.
 */
export function involvesNamespace(
  pf: PortForward,
  listenAddress: string,
  ns: string,
  labels: Record<string, string> | undefined,
): boolean {
  const peers = clientPeers(pf, listenAddress);
  return !!peers?.some((p) =>
    p.namespaceSelector
      ? labels !== undefined && matchesSelector(labels, p.namespaceSelector)
      : pf.metadata.namespace === ns,
  );
}

/** Whether `pf` selects clients by namespace labels (a Namespace change may change who may connect). */
export function selectsNamespaces(pf: PortForward, listenAddress: string): boolean {
  return !!clientPeers(pf, listenAddress)?.some((p) => p.namespaceSelector);
}

/**
 * admittedAddresses, remembered per PortForward until the directory's version or the inputs change:
 * a reconcile runs on every closed connection, and the pods of many namespaces need not be walked
 * each time.
 */
export class AdmittedAddresses {
  private readonly memo = new Map<string, { version: number; input: string; addresses?: string[] }>();

  constructor(private readonly dir: ClientDirectory) {}

  of(pf: PortForward, listenAddress: string): string[] | undefined {
    const version = this.dir.version?.();
    if (version === undefined) return admittedAddresses(pf, listenAddress, this.dir);
    const key = keyOf(pf);
    const input = JSON.stringify([listenAddress, pf.spec.allowedClients, pf.spec.allowedSourceRanges]);
    const seen = this.memo.get(key);
    if (seen && seen.version === version && seen.input === input) return seen.addresses;
    const addresses = admittedAddresses(pf, listenAddress, this.dir);
    this.memo.set(key, { version, input, addresses });
    return addresses;
  }

  forget(key: string): void {
    this.memo.delete(key);
  }
}
