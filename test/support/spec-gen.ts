// Random PortForward specs that pass the CRD's schema (crds/portforward.yaml): every target kind,
// numbered and named ports, names, local ports, listen addresses, source ranges, ttls, suspend and
// loadBalance, within the schema's limits and uniqueness rules. Some name things that exist in the
// namespace (`world`), most do not.
import type { LabelSelector, PortForwardSpec, PortSpec } from '../../src/api/v1alpha1';
import type { Random } from './fuzz';

export interface World {
  pods: string[];
  services: string[];
  deployments: string[];
  statefulSets: string[];
  /** Labels the pods carry. */
  labels: Record<string, string>[];
  /** Port names the pods or services declare. */
  portNames: string[];
  portNumbers: number[];
  /** Where requested local ports are drawn from. */
  localPorts: { min: number; max: number };
}

const DNS_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

function label(rnd: Random, max = 12): string {
  const n = rnd.int(1, max);
  let s = rnd.pick([...'abcdefghijklmnopqrstuvwxyz']);
  for (let i = 1; i < n; i++) s += rnd.bool(0.1) && i < n - 1 ? '-' : rnd.pick([...DNS_CHARS]);
  return s;
}

/** An IANA service name: lowercase letters and digits in '-'-separated runs, a letter, at most 15. */
function portName(rnd: Random): string {
  const s = label(rnd, 15).replace(/-+/g, '-');
  return /[a-z]/.test(s) ? s : `p${s}`.slice(0, 15);
}

function selector(rnd: Random, world: World): LabelSelector {
  const s: LabelSelector = {};
  if (rnd.bool(0.7)) {
    const known =
      world.labels.length && rnd.bool(0.6) ? rnd.pick(world.labels) : { [label(rnd)]: label(rnd) };
    s.matchLabels = { ...known };
  }
  if (!s.matchLabels || rnd.bool(0.3)) {
    s.matchExpressions = Array.from({ length: rnd.int(1, 3) }, () => {
      const operator = rnd.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
      const key =
        world.labels.length && rnd.bool(0.5) ? rnd.pick(Object.keys(rnd.pick(world.labels))) : label(rnd);
      return operator === 'In' || operator === 'NotIn'
        ? { key, operator, values: Array.from({ length: rnd.int(1, 3) }, () => label(rnd)) }
        : { key, operator };
    });
  }
  return s;
}

function ipv4(rnd: Random): string {
  return [rnd.int(0, 255), rnd.int(0, 255), rnd.int(0, 255), rnd.int(0, 255)].join('.');
}

export function randomSpec(rnd: Random, world: World): PortForwardSpec {
  const name = (known: string[]): string =>
    known.length && rnd.bool(0.6) ? rnd.pick(known) : label(rnd, 20);
  const target = rnd.pick([
    () => ({ pod: name(world.pods) }),
    () => ({ service: name(world.services) }),
    () => ({ deployment: name(world.deployments) }),
    () => ({ statefulSet: name(world.statefulSets) }),
    () => ({ selector: selector(rnd, world) }),
  ])();
  const names = new Set<string>();
  const locals = new Set<number>();
  const ports: PortSpec[] = Array.from({ length: rnd.bool(0.05) ? rnd.int(1, 32) : rnd.int(1, 4) }, () => {
    const p: PortSpec = {
      port: rnd.bool(0.6)
        ? world.portNumbers.length && rnd.bool(0.6)
          ? rnd.pick(world.portNumbers)
          : rnd.int(1, 65535)
        : world.portNames.length && rnd.bool(0.6)
          ? rnd.pick(world.portNames)
          : portName(rnd),
    };
    if (rnd.bool(0.4)) {
      const n = label(rnd, 15);
      if (!names.has(n)) {
        names.add(n);
        p.name = n;
      }
    }
    if (rnd.bool(0.3)) {
      const l = rnd.int(world.localPorts.min, world.localPorts.max);
      if (!locals.has(l)) {
        locals.add(l);
        p.localPort = l;
      }
    }
    if (rnd.bool(0.05)) p.protocol = 'TCP';
    return p;
  });
  const spec: PortForwardSpec = { target, ports };
  if (rnd.bool(0.15)) spec.listenAddress = rnd.pick(['127.0.0.1', '::1', '0.0.0.0', '::', ipv4(rnd)]);
  if (rnd.bool(0.15)) {
    spec.allowedSourceRanges = [
      ...new Set(
        Array.from({ length: rnd.int(1, 3) }, () =>
          rnd.bool(0.8) ? `${ipv4(rnd)}/${rnd.int(0, 32)}` : rnd.pick(['::1/128', 'fd00::/8', '::/0']),
        ),
      ),
    ];
  }
  if (rnd.bool(0.2)) spec.ttl = rnd.pick(['1h', '90s', '2h30m', '1.5h', '500ms', '3s', '10m', '24h']);
  if (rnd.bool(0.1)) spec.suspend = rnd.bool();
  if (rnd.bool(0.2)) spec.loadBalance = rnd.pick(['first', 'spread'] as const);
  return spec;
}
