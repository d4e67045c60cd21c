// Helpers of the end-to-end suites: PortForward objects through the real API, waits on their status.
import * as k8s from '@kubernetes/client-node';
import * as net from 'node:net';
import { PortForward, PortForwardSpec } from '../../src/api/v1alpha1';
import { poll, TestCluster } from '../env/cluster';

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

export function condition(pf: PortForward, type: string): { status: string; reason: string } | undefined {
  return pf.status?.conditions?.find((c) => c.type === type);
}

/** Resolves true when a TCP connect to the port is refused (nothing listens). */
export function connectRefused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A connection that reads until the peer closes; resolves with what it read. */
export function connectAndRead(
  port: number,
  send?: Buffer,
  host = '127.0.0.1',
): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, host, () => {
      if (send) s.write(send);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => resolve({ data: Buffer.concat(chunks), error: err.message }));
    s.on('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}
