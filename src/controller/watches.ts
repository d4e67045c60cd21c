// Routes the watch caches' events to the serving term as keys (mappers.ts). While no term runs (a
// standby replica), events are dropped: a new term runs every key of the operator's class anyway.
import { keyOf, ObjectKey } from '../api/key';
import type { PortForward } from '../api/v1alpha1';
import type { WatchCaches } from './caches';
import { WATCHED_RESOURCES } from '../targets/kinds';
import { allKeys, keysForClients, keysForPortForward, keysForTarget, MapperContext } from './mappers';
import type { OwnWrites } from './own-writes';

export interface KeySink {
  enqueue(keys: readonly ObjectKey[]): void;
  /** Runs the keys now, their backoff forgotten. */
  catchUp(keys: readonly ObjectKey[]): void;
  holds(key: ObjectKey): boolean;
}

export function routeWatchEvents(
  caches: WatchCaches,
  rule: { serves(pf: PortForward): boolean; listenAddress: string },
  sink: () => KeySink | undefined,
  onRecover: () => void,
  /** The operator's own status writes: their watch events run nothing. */
  ownWrites?: OwnWrites,
): void {
  const ctx: MapperContext = {
    portForwards: (ns) => caches.portForwards(ns),
    serves: (pf) => rule.serves(pf),
    listenAddress: rule.listenAddress,
    namespaceLabels: (ns) => caches.namespaceLabels(ns),
  };
  const holds = (key: ObjectKey): boolean => sink()?.holds(key) ?? false;
  caches.onChange('PortForward', (obj) => {
    const pf = obj as PortForward;
    const rv = pf.metadata?.resourceVersion;
    const key = keyOf(pf);
    // Only while the cache still holds that object: the delete event of a forward carries the last
    // object the cache had, which may be the echo's, and must run the key.
    if (
      ownWrites?.isEcho(key, rv) &&
      caches.portForward(pf.metadata.namespace, pf.metadata.name)?.metadata?.resourceVersion === rv
    )
      return;
    sink()?.enqueue(keysForPortForward(ctx, pf, holds));
  });
  caches.onClientsChange((namespaces) => sink()?.enqueue(keysForClients(ctx, namespaces)));
  for (const kind of WATCHED_RESOURCES)
    caches.onChange(kind, (obj) => sink()?.enqueue(keysForTarget(ctx, kind, obj)));
  // After an API server outage, every PortForward's key may be deep in a backoff (its status writes
  // failed, again and again while connections failed) and a relist reports only objects that changed:
  // catch up at once instead of minutes later.
  caches.onRecover('PortForward', () => {
    onRecover();
    sink()?.catchUp(allKeys(ctx));
  });
}
