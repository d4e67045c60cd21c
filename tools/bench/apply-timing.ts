// One PortForward applied and timed to Ready as a user's `kubectl apply` then `kubectl wait` would
// see it, split in two: the create call (the API server's share while it is loaded), then create ->
// Ready, from a watch of that one name (no polling: a GET every 100 ms under load added its own
// latency to what it measured). A forward seen Ready before the create's answer counts as 0.
import * as k8s from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import type { PortForward, PortForwardSpec } from '../../src/api/v1alpha1';
import type { TestCluster } from '../testenv/cluster';
import { applyPortForward } from '../testenv/portforward';

export interface ApplyTiming {
  /** The create call, ms. */
  createMs: number;
  /** From the create call's answer to the Ready watch event, ms. */
  readyMs: number;
  /** The two together: a user's apply -> Ready. */
  totalMs: number;
}

export async function applyTimed(
  cluster: TestCluster,
  ns: string,
  name: string,
  spec: PortForwardSpec,
  timeoutMs: number,
): Promise<ApplyTiming> {
  let readyAt: (at: number) => void = () => undefined;
  const ready = new Promise<number>((resolve) => (readyAt = resolve));
  let done = false;
  let req: AbortController | undefined;
  // client-node's Watch ends a watch after 30 s without an event: watch again until Ready or the end.
  const watch = async (): Promise<void> => {
    req = await new k8s.Watch(cluster.kc).watch(
      `/apis/portforward.dev/v1alpha1/namespaces/${ns}/portforwards`,
      { fieldSelector: `metadata.name=${name}` },
      (_type: string, pf: PortForward) => {
        if (pf.status?.phase === 'Ready') readyAt(performance.now());
      },
      () => {
        if (!done) setTimeout(() => void watch().catch(() => undefined), 100);
      },
    );
  };
  await watch();
  let failed: (err: Error) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => (failed = reject));
  failure.catch(() => undefined); // raced below
  const timer = setTimeout(() => failed(new Error(`${ns}/${name} not Ready in ${timeoutMs} ms`)), timeoutMs);
  try {
    const t0 = performance.now();
    await applyPortForward(cluster, ns, name, spec);
    const created = performance.now();
    const at = await Promise.race([ready, failure]);
    return {
      createMs: created - t0,
      readyMs: Math.max(0, at - created),
      totalMs: Math.max(at, created) - t0,
    };
  } finally {
    done = true;
    clearTimeout(timer);
    req?.abort();
  }
}
