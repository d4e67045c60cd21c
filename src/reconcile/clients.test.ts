import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import type { ClientPeer, PortForward } from '../api/v1alpha1';
import { PodAddressIndex } from './pod-addresses';
import {
  AdmittedAddresses,
  admittedAddresses,
  ClientDirectory,
  involvesNamespace,
  isLoopbackOnly,
  selectsNamespaces,
} from './clients';

/** A directory over pods and namespace labels, through the real address index. */
function directory(
  namespaces: Record<string, Record<string, string>>,
  pods: V1Pod[],
): ClientDirectory & { reads: number } {
  const idx = new PodAddressIndex();
  for (const p of pods) idx.update(p.metadata!.namespace!, p.metadata!.name!, p);
  const dir = {
    reads: 0,
    namespaceLabels: (n: string) => namespaces[n],
    namespaceNames: () => Object.keys(namespaces),
    pods: (ns: string) => {
      dir.reads++;
      return pods.filter((p) => p.metadata?.namespace === ns);
    },
    podAt: (a: string) => idx.podAt(a),
    version: () => 1,
  };
  return dir;
}

function pod(
  ns: string,
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  hostNetwork = false,
): V1Pod {
  return {
    metadata: { namespace: ns, name, labels },
    spec: { containers: [], hostNetwork },
    status: { phase: 'Running', podIPs: [{ ip }] },
  };
}

function pf(spec: { allowedClients?: ClientPeer[]; allowedSourceRanges?: string[] } = {}): PortForward {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { namespace: 'home', name: 'web' },
    spec: { target: { pod: 'web' }, ports: [{ port: 80 }], ...spec },
  };
}

const NAMESPACES = { home: { team: 'home' }, friends: { team: 'friends' }, other: {} };
const PODS = [
  pod('home', 'h1', '10.0.0.1', { role: 'client' }),
  pod('home', 'h2', '10.0.0.2'),
  pod('home', 'host', '192.168.0.1', {}, true),
  pod('friends', 'f1', '10.0.1.1', { role: 'client' }),
  pod('friends', 'f2', '10.0.1.2'),
  pod('other', 'o1', '10.0.2.1', { role: 'client' }),
  // Two pods claim one address: it is no pod.
  pod('other', 'dup1', '10.0.9.9'),
  pod('friends', 'dup2', '10.0.9.9'),
];

describe('who may connect (allowedClients, read like NetworkPolicy peers)', function () {
  const dir = directory(NAMESPACES, PODS);
  const admitted = (p: PortForward, address = '0.0.0.0'): string[] | undefined =>
    admittedAddresses(p, address, dir);

  it('tells loopback-only listeners apart', function () {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', 'localhost'])
      assert.equal(isLoopbackOnly(a), true, a);
    for (const a of ['0.0.0.0', '::', '10.0.0.5', '::ffff:10.0.0.5', 'fd00::1'])
      assert.equal(isLoopbackOnly(a), false, a);
  });

  it('consults no pods on a loopback-only listener, whatever the spec says', function () {
    assert.equal(admitted(pf(), '127.0.0.1'), undefined);
    assert.equal(admitted(pf({ allowedClients: [{ podSelector: {} }] }), '::1'), undefined);
  });

  it('admits the pods of its own namespace by default, never a pod on the host network', function () {
    assert.deepEqual(admitted(pf()), ['10.0.0.1', '10.0.0.2']);
  });

  it('consults no pods when allowedSourceRanges is the only rule', function () {
    assert.equal(admitted(pf({ allowedSourceRanges: ['10.0.0.0/8'] })), undefined);
  });

  it('podSelector alone selects pods of the PortForward’s namespace', function () {
    assert.deepEqual(
      admitted(pf({ allowedClients: [{ podSelector: { matchLabels: { role: 'client' } } }] })),
      ['10.0.0.1'],
    );
  });

  it('namespaceSelector alone selects every pod of the matching namespaces, not the own one unless it matches', function () {
    const friends = pf({ allowedClients: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }] });
    assert.deepEqual(admitted(friends), ['10.0.1.1', '10.0.1.2'], 'dup2 shares its address: no pod');
  });

  it('both select the matching pods of the matching namespaces; {} matches everything', function () {
    const both = pf({
      allowedClients: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } }],
    });
    assert.deepEqual(admitted(both), ['10.0.0.1', '10.0.1.1', '10.0.2.1']);
    const all = pf({ allowedClients: [{ namespaceSelector: {} }] });
    assert.deepEqual(admitted(all), ['10.0.0.1', '10.0.0.2', '10.0.1.1', '10.0.1.2', '10.0.2.1']);
  });

  it('takes the union of several peers, with allowedSourceRanges beside them', function () {
    const p = pf({
      allowedClients: [
        { podSelector: { matchLabels: { role: 'client' } } },
        { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['friends'] }] } },
      ],
      allowedSourceRanges: ['192.168.0.0/16'],
    });
    assert.deepEqual(admitted(p), ['10.0.0.1', '10.0.1.1', '10.0.1.2']);
  });

  it('knows which namespaces a rule looks at, for re-running it when their pods change', function () {
    const friends = pf({ allowedClients: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }] });
    assert.equal(involvesNamespace(pf(), '0.0.0.0', 'home', NAMESPACES.home), true);
    assert.equal(involvesNamespace(pf(), '0.0.0.0', 'friends', NAMESPACES.friends), false);
    assert.equal(involvesNamespace(pf(), '127.0.0.1', 'home', NAMESPACES.home), false);
    assert.equal(involvesNamespace(friends, '0.0.0.0', 'friends', NAMESPACES.friends), true);
    assert.equal(involvesNamespace(friends, '0.0.0.0', 'home', NAMESPACES.home), false);
    assert.equal(selectsNamespaces(friends, '0.0.0.0'), true);
    assert.equal(selectsNamespaces(pf(), '0.0.0.0'), false);
  });

  it('walks the pods again only when the directory or the spec changed', function () {
    const d = directory(NAMESPACES, PODS);
    let version = 1;
    d.version = () => version;
    const memo = new AdmittedAddresses(d);
    const p = pf();
    assert.deepEqual(memo.of(p, '0.0.0.0'), ['10.0.0.1', '10.0.0.2']);
    const reads = d.reads;
    memo.of(p, '0.0.0.0');
    assert.equal(d.reads, reads, 'remembered');
    version++;
    memo.of(p, '0.0.0.0');
    assert.equal(d.reads, reads + 1, 'a new version walks again');
    assert.deepEqual(
      memo.of(pf({ allowedClients: [{ podSelector: { matchLabels: { role: 'client' } } }] }), '0.0.0.0'),
      ['10.0.0.1'],
    );
  });
});
