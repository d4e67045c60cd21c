// Routes each connection to the transport of its pod's cluster: the relay's own API server, or a
// remote one (StreamTarget.cluster, from a kubeconfig Secret). Each cluster id gets a transport of its
// own, made on first use (pooled SPDY sessions, fallbacks and all), so clusters never share a session
// and a changed kubeconfig (a new id) dials anew.
//
// Guarantees
// - retain() tells every transport the pods of its own cluster; one whose cluster is no longer
//   retained gets an empty list: its sessions take no new connections, and its open ones go on.
// - warm() asks the transport of the pod's cluster (ADR 14's warm sessions, per cluster).
//
// Caveats
// - A transport of a cluster id no longer retained stays until close() (its open connections may
//   last for hours); it holds no idle session.
import type * as net from 'node:net';
import type { RelayTunnel, RetainedPod, StreamTarget, Transport, TunnelHooks } from './transport';
import type { ClusterRef } from './types';

export class ClusterTransport implements Transport {
  readonly name: Transport['name'];
  private readonly remote = new Map<string, Transport>();

  constructor(
    private readonly local: Transport,
    private readonly make: (cluster: ClusterRef) => Transport,
  ) {
    this.name = local.name;
  }

  connect(
    socket: net.Socket,
    target: StreamTarget,
    hooks: TunnelHooks,
    signal: AbortSignal,
  ): Promise<RelayTunnel> {
    return this.of(target.cluster).connect(socket, target, hooks, signal);
  }

  retain(pods: readonly RetainedPod[]): void {
    const byCluster = new Map<string, RetainedPod[]>();
    const local: RetainedPod[] = [];
    for (const p of pods) {
      if (!p.cluster) local.push(p);
      else {
        this.of(p.cluster);
        let list = byCluster.get(p.cluster.id);
        if (!list) byCluster.set(p.cluster.id, (list = []));
        list.push(p);
      }
    }
    this.local.retain?.(local);
    for (const [id, t] of this.remote) t.retain?.(byCluster.get(id) ?? []);
  }

  warm(pod: RetainedPod): boolean {
    return this.of(pod.cluster).warm?.(pod) ?? false;
  }

  async close(): Promise<void> {
    await Promise.all([this.local, ...this.remote.values()].map((t) => t.close()));
  }

  /** The transport of `cluster` (undefined: the local one), made on first use. */
  private of(cluster: ClusterRef | undefined): Transport {
    if (!cluster) return this.local;
    let t = this.remote.get(cluster.id);
    if (!t) {
      t = this.make(cluster);
      this.remote.set(cluster.id, t);
    }
    return t;
  }
}
