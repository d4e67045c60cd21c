// The reconciler wired to fakes of its effects, for its unit tests: PortForwards in a map (the watch
// cache), the local cluster's pods in an array, a FakeRelay, every status write recorded (and seen by
// the cache at once, as the watch catches up) or refused with a 409 when told, events dropped, and a
// clock that moves only when the test moves it.
import type { V1Pod } from '@kubernetes/client-node';
import * as winston from 'winston';
import type { PortForward, PortForwardStatus } from '../../api/v1alpha1';
import { objectsOf } from '../../targets/testing/objects';
import type { ClusterDirectory } from '../clusters';
import { PortAllocator } from '../ports';
import { Reconciler } from '../reconciler';
import { FakeRelay } from './fake-relay';

export interface HarnessOptions {
  /** The pods of the local cluster (its caches); the test may change the array in place. */
  pods: V1Pod[];
  /** The clusters of spec.kubeConfig. Default: none served. */
  clusters?: ClusterDirectory;
  /** Default: 5000. */
  statusIntervalMs?: number;
  /** Default: 0 (no budget). */
  counterWritesPerSecond?: number;
}

export interface ReconcilerHarness {
  rec: Reconciler;
  relay: FakeRelay;
  /** Every status written, in order. */
  writes: PortForwardStatus[];
  /** The PortForwards by `namespace/name`. */
  pfs: Map<string, PortForward>;
  /** HarnessOptions.pods. */
  pods: V1Pod[];
  /** Puts PortForward ns/`name` (generation 1) with `spec` over the default one (pod p, port 8080). */
  apply(name: string, spec?: Partial<PortForward['spec']>, status?: PortForwardStatus): void;
  /** Moves the clock on. */
  advance(ms: number): Date;
  /** While true, status writes fail as a conflict does. */
  failWrites(v: boolean): boolean;
}

export function reconcilerHarness(opts: HarnessOptions): ReconcilerHarness {
  let now = new Date('2026-11-30T10:00:00Z');
  const pfs = new Map<string, PortForward>();
  const writes: PortForwardStatus[] = [];
  let failWrites = false;
  const relay = new FakeRelay();
  const rec = new Reconciler({
    getPortForward: (ns, name) => pfs.get(`${ns}/${name}`),
    caches: objectsOf({ Pod: opts.pods }),
    clusters: opts.clusters,
    relay,
    allocator: new PortAllocator({ min: 20000, max: 20009 }),
    writeStatus: (ns, name, status) => {
      if (failWrites) return Promise.reject(new Error('409 conflict'));
      writes.push(status);
      // The watch cache catches up with what was written.
      const pf = pfs.get(`${ns}/${name}`);
      if (pf) pfs.set(`${ns}/${name}`, { ...pf, status });
      return Promise.resolve(true);
    },
    events: { record: () => undefined },
    config: {
      listenAddress: '127.0.0.1',
      allowedListenAddresses: [],
      holdMs: 30_000,
      advertiseAddress: '127.0.0.1',
      statusIntervalMs: opts.statusIntervalMs ?? 5000,
      counterWritesPerSecond: opts.counterWritesPerSecond ?? 0,
    },
    logger: winston.createLogger({ silent: true }),
    now: () => now,
  });
  return {
    rec,
    relay,
    writes,
    pfs,
    pods: opts.pods,
    apply: (name, spec = {}, status) => {
      pfs.set(`ns/${name}`, {
        apiVersion: 'portforward.dev/v1alpha1',
        kind: 'PortForward',
        metadata: { name, namespace: 'ns', generation: 1, uid: `pf-${name}` },
        spec: { target: { pod: 'p' }, ports: [{ port: 8080 }], ...spec },
        status,
      });
    },
    advance: (ms) => (now = new Date(now.getTime() + ms)),
    failWrites: (v) => (failWrites = v),
  };
}
