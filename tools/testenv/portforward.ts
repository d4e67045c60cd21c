// PortForward objects on the test control plane through the real API: create, read, patch the spec,
// delete, and wait on their status. The benchmarks and the demo use them, and the tests through
// test/support/portforward.ts.
import * as k8s from '@kubernetes/client-node';
import { PortForward, PortForwardSpec } from '../../src/api/v1alpha1';
import { TestCluster } from './cluster';
import { poll } from './wait';

export async function applyPortForward(
  cluster: TestCluster,
  ns: string,
  name: string,
  spec: PortForwardSpec,
): Promise<PortForward> {
  const body = {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name, namespace: ns },
    spec,
  };
  return (await cluster.custom.createNamespacedCustomObject({
    group: 'portforward.dev',
    version: 'v1alpha1',
    namespace: ns,
    plural: 'portforwards',
    body,
  })) as PortForward;
}

export async function getPortForward(cluster: TestCluster, ns: string, name: string): Promise<PortForward> {
  return (await cluster.custom.getNamespacedCustomObject({
    group: 'portforward.dev',
    version: 'v1alpha1',
    namespace: ns,
    plural: 'portforwards',
    name,
  })) as PortForward;
}

/** JSON merge patch of the spec. */
export async function patchSpec(
  cluster: TestCluster,
  ns: string,
  name: string,
  spec: Partial<PortForwardSpec>,
): Promise<void> {
  await cluster.custom.patchNamespacedCustomObject(
    {
      group: 'portforward.dev',
      version: 'v1alpha1',
      namespace: ns,
      plural: 'portforwards',
      name,
      body: { spec },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}

export async function deletePortForward(cluster: TestCluster, ns: string, name: string): Promise<void> {
  await cluster.custom.deleteNamespacedCustomObject({
    group: 'portforward.dev',
    version: 'v1alpha1',
    namespace: ns,
    plural: 'portforwards',
    name,
  });
}

/** Polls the PortForward until `check` holds; returns it. The error names the last status seen. */
export async function waitForStatus(
  cluster: TestCluster,
  ns: string,
  name: string,
  what: string,
  check: (pf: PortForward) => boolean,
  timeoutMs = 10_000,
): Promise<PortForward> {
  let last: PortForward | undefined;
  try {
    await poll(what, timeoutMs, async () => {
      last = await getPortForward(cluster, ns, name);
      return check(last);
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last?.status)}`, {
      cause: err,
    });
  }
  return last!;
}
