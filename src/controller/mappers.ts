// Watch events to keys: which PortForwards must be reconciled when an object changes. Pure functions
// of the changed object and the cached PortForwards, so each rule is a unit test. Only PortForwards
// this operator serves (`serves`, its class) are returned; a reconcile reads the current state itself
// (level-based), so returning a key too many costs one run, a key too few a stale forward.
import type { KubernetesObject } from '@kubernetes/client-node';
import { keyOf, ObjectKey } from '../api/key';
import type { PortForward } from '../api/v1alpha1';
import { involvesNamespace, selectsNamespaces } from '../reconcile/clients';
import { kindOf, ResourceKind } from '../targets/kinds';

export interface MapperContext {
  /** The PortForwards of a namespace (all namespaces when undefined), from the cache. */
  portForwards(namespace?: string): readonly PortForward[];
  /** Whether this operator serves `pf` (its class). */
  serves(pf: PortForward): boolean;
  /** The operator's --listen-address, for forwards that name none. */
  listenAddress: string;
  namespaceLabels(namespace: string): Record<string, string> | undefined;
}

/**
 * An object a target kind reads changed (a pod, service, deployment ...): the served PortForwards of its
 * namespace whose target may involve it, as each kind says (targets/kinds.ts). A pod change runs every
 * target of the namespace that selects pods too, since a label change can move a pod into or out of a
 * selector.
 */
export function keysForTarget(ctx: MapperContext, kind: ResourceKind, obj: KubernetesObject): ObjectKey[] {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name;
  if (!ns) return [];
  const involves = (t: PortForward['spec']['target']): boolean =>
    kindOf(t)?.involves(t, kind, name) ?? kind === 'Pod';
  return ctx
    .portForwards(ns)
    .filter((pf) => pf.spec?.target && ctx.serves(pf) && involves(pf.spec.target))
    .map((pf) => keyOf(pf));
}

/**
 * Who may connect may have changed (pods' addresses or labels in `namespaces`, or, with 'all', a
 * namespace's labels): the served PortForwards whose client rule looks there.
 */
export function keysForClients(ctx: MapperContext, namespaces: readonly string[] | 'all'): ObjectKey[] {
  return ctx
    .portForwards()
    .filter((pf) => {
      if (!pf.spec || !ctx.serves(pf)) return false;
      const address = pf.spec.listenAddress ?? ctx.listenAddress;
      return namespaces === 'all'
        ? selectsNamespaces(pf, address)
        : namespaces.some((ns) => involvesNamespace(pf, address, ns, ctx.namespaceLabels(ns)));
    })
    .map((pf) => keyOf(pf));
}

/**
 * A PortForward changed: its key when this operator serves it, or still holds it (a forward that
 * moved to another class is run once more, to close what this operator holds of it).
 */
export function keysForPortForward(
  ctx: Pick<MapperContext, 'serves'>,
  pf: PortForward,
  holds: (key: ObjectKey) => boolean,
): ObjectKey[] {
  const key = keyOf(pf);
  return ctx.serves(pf) || holds(key) ? [key] : [];
}

/** Every served PortForward (a new serving term, or a catch-up after an API server outage). */
export function allKeys(ctx: Pick<MapperContext, 'portForwards' | 'serves'>): ObjectKey[] {
  return ctx
    .portForwards()
    .filter((pf) => ctx.serves(pf))
    .map((pf) => keyOf(pf));
}
