// The cluster a PortForward's target is resolved and reached in: this one (the operator's watch
// caches, the relay's own API server), or the one a kubeconfig Secret names (spec.kubeConfig). The
// reconciler only reads this interface; controller/remote-clusters.ts keeps the remote ones.
import type { PortForward } from '../api/v1alpha1';
import type { ClusterRef } from '../relay';
import type { ClusterFailureReason, TargetObjects } from '../targets/kinds';

/** What status shows of a remote cluster: never a credential. */
export interface RemoteInfo {
  server: string;
  namespace: string;
}

export type ClusterView =
  | { ok: true; objects: TargetObjects; cluster?: ClusterRef; remote?: RemoteInfo }
  | { ok: false; reason: ClusterFailureReason; message: string; remote?: RemoteInfo };

export interface ClusterDirectory {
  /**
   * The cluster of `pf`'s target (it has spec.kubeConfig), now; `key` is counted as its user until
   * release(key), so its watches run while some PortForward needs them. Never throws.
   */
  clusterOf(key: string, pf: PortForward): ClusterView;
  /** `key` no longer uses a remote cluster (deleted, or no spec.kubeConfig any more). */
  release(key: string): void;
}

/** Without remote clusters: every kubeConfig is refused as not served. */
export const NO_REMOTE_CLUSTERS: ClusterDirectory = {
  clusterOf: () => ({
    ok: false,
    reason: 'RemotePending',
    message: 'this operator serves no remote clusters',
  }),
  release: () => undefined,
};
