// @dot-i/k8s-operator's base class, constructed on the operator's own KubeConfig (ADR 2; why the
// prototype swap below stays: ADR 10).
//
// dot-i's constructor calls `new KubeConfig().loadFromDefault()` and `makeApiClient()` on it. With a
// broken $KUBECONFIG or ~/.kube/config that throws (ENOENT, a YAML error, or client-node 2.x's "No
// active cluster!") even when --kubeconfig names a good file, and the operator would never start. So
// while the base class is constructed, loadFromDefault loads the KubeConfig already chosen by
// loadKubeConfig instead of searching. The override is scoped to that one synchronous call.
import Operator from '@dot-i/k8s-operator';
import * as k8s from '@kubernetes/client-node';

/**
 * Runs `construct` (a `new` of an Operator subclass) with dot-i's default-kubeconfig search replaced
 * by `kc`; the subclass's constructor sets `kubeConfig` itself.
 */
export function constructOnKubeConfig<T extends Operator>(kc: k8s.KubeConfig, construct: () => T): T {
  const proto = k8s.KubeConfig.prototype;
  const original = Object.getOwnPropertyDescriptor(proto, 'loadFromDefault');
  Object.defineProperty(proto, 'loadFromDefault', {
    configurable: true,
    writable: true,
    value: function (this: k8s.KubeConfig): void {
      this.loadFromOptions({
        clusters: kc.clusters,
        users: kc.users,
        contexts: kc.contexts,
        currentContext: kc.currentContext,
      });
    },
  });
  try {
    return construct();
  } finally {
    if (original) Object.defineProperty(proto, 'loadFromDefault', original);
  }
}
