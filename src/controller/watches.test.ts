import * as assert from 'node:assert/strict';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectKey } from '../api/key';
import type { PortForward } from '../api/v1alpha1';
import type { WatchCaches } from './caches';
import { OwnWrites } from './own-writes';
import { routeWatchEvents } from './watches';

/** The part of WatchCaches routeWatchEvents uses: PortForwards by name, and their change handlers. */
function fakeCaches(): {
  caches: WatchCaches;
  held: Map<string, PortForward>;
  change(pf: PortForward): void;
} {
  const held = new Map<string, PortForward>();
  const handlers: ((obj: KubernetesObject) => void)[] = [];
  const caches = {
    onChange: (kind: string, h: (obj: KubernetesObject) => void) =>
      kind === 'PortForward' && handlers.push(h),
    onClientsChange: () => undefined,
    onRecover: () => undefined,
    portForward: (ns: string, name: string) => held.get(`${ns}/${name}`),
    portForwards: () => [...held.values()],
    namespaceLabels: () => undefined,
  } as unknown as WatchCaches;
  return { caches, held, change: (pf) => handlers.forEach((h) => h(pf as unknown as KubernetesObject)) };
}

function pf(rv: string): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { namespace: 'ns', name: 'a', resourceVersion: rv, generation: 1 },
    spec: { target: { pod: 'p' }, ports: [{ port: 80 }] },
  };
}

describe("routeWatchEvents with the operator's own writes (issue 24)", function () {
  function setup(): {
    own: OwnWrites;
    enqueued: ObjectKey[];
    held: Map<string, PortForward>;
    event: (rv: string, deleted?: boolean) => void;
  } {
    const fake = fakeCaches();
    const { caches, held } = fake;
    const own = new OwnWrites();
    const enqueued: ObjectKey[] = [];
    const sink = {
      enqueue: (keys: readonly ObjectKey[]) => enqueued.push(...keys),
      catchUp: () => undefined,
      holds: () => false,
    };
    routeWatchEvents(
      caches,
      { serves: () => true, listenAddress: '127.0.0.1' },
      () => sink,
      () => undefined,
      own,
    );
    // As client-node's ListWatch does: the cache holds the object (or no longer, for a delete) first.
    const event = (rv: string, deleted = false): void => {
      if (deleted) held.delete('ns/a');
      else held.set('ns/a', pf(rv));
      fake.change(pf(rv));
    };
    return { own, enqueued, held, event };
  }

  it('runs nothing for the echo of its own write, and the key for every other event', function () {
    const t = setup();
    t.event('1');
    t.own.wrote('ns/a', '2');
    t.event('2');
    t.event('3');
    assert.deepEqual(t.enqueued, ['ns/a', 'ns/a'], 'the create and the later change ran; the echo did not');
  });

  it('runs the key for a delete that carries the noted object (a relist after a 410)', function () {
    const t = setup();
    t.event('5');
    t.own.wrote('ns/a', '5'); // a stale note: its echo came before the write's response
    t.event('5', true);
    assert.deepEqual(t.enqueued, ['ns/a', 'ns/a']);
  });

  it('runs the echo of a write when a pass started before the echo came', function () {
    const t = setup();
    t.own.wrote('ns/a', '7');
    t.own.passStarts('ns/a');
    t.event('7');
    assert.deepEqual(t.enqueued, ['ns/a']);
  });
});
