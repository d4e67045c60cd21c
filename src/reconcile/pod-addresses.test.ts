import type { V1Pod } from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { canonicalAddress, PodAddressIndex, podClientAddresses } from './pod-addresses';

function pod(
  ns: string,
  name: string,
  ips: string[],
  extra: { labels?: Record<string, string>; phase?: string; hostNetwork?: boolean } = {},
): V1Pod {
  return {
    metadata: { namespace: ns, name, labels: extra.labels },
    spec: { containers: [], hostNetwork: extra.hostNetwork },
    status: { phase: extra.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

describe('pod address index', function () {
  it('takes the addresses of Running pods off the host network only', function () {
    assert.deepEqual(podClientAddresses(pod('a', 'p', ['10.0.0.2', 'fd00::2'])), ['10.0.0.2', 'fd00::2']);
    assert.deepEqual(podClientAddresses(pod('a', 'p', ['10.0.0.2'], { phase: 'Pending' })), []);
    assert.deepEqual(podClientAddresses(pod('a', 'p', ['10.0.0.2'], { phase: 'Succeeded' })), []);
    assert.deepEqual(podClientAddresses(pod('a', 'p', ['192.168.1.5'], { hostNetwork: true })), []);
    const legacy: V1Pod = { metadata: { name: 'p' }, status: { phase: 'Running', podIP: '10.0.0.9' } };
    assert.deepEqual(podClientAddresses(legacy), ['10.0.0.9'], 'status.podIP when podIPs is missing');
  });

  it('reads an IPv4-mapped IPv6 client address as IPv4', function () {
    assert.equal(canonicalAddress('::ffff:127.244.0.2'), '127.244.0.2');
    assert.equal(canonicalAddress('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(canonicalAddress('FD00::1'), 'fd00::1');
  });

  it('finds the one pod with an address, and none when two claim it or it went away', function () {
    const idx = new PodAddressIndex();
    assert.deepEqual(idx.update('a', 'p', pod('a', 'p', ['10.0.0.2'])), ['a']);
    assert.equal(idx.podAt('10.0.0.2'), 'a/p');
    assert.equal(idx.podAt('::ffff:10.0.0.2'), 'a/p');
    assert.equal(idx.podAt('10.0.0.3'), undefined);
    // A second pod with the same address: neither is trusted, and both namespaces are told.
    assert.deepEqual(idx.update('b', 'q', pod('b', 'q', ['10.0.0.2'])).sort(), ['a', 'b']);
    assert.equal(idx.podAt('10.0.0.2'), undefined);
    assert.deepEqual(idx.update('b', 'q', undefined).sort(), ['a', 'b']);
    assert.equal(idx.podAt('10.0.0.2'), 'a/p');
    assert.deepEqual(idx.update('a', 'p', pod('a', 'p', ['10.0.0.2'], { phase: 'Failed' })), ['a']);
    assert.equal(idx.podAt('10.0.0.2'), undefined);
  });

  it('reports a change only when addresses or labels change, not on other status updates', function () {
    const idx = new PodAddressIndex();
    idx.update('a', 'p', pod('a', 'p', ['10.0.0.2'], { labels: { role: 'x' } }));
    const same = pod('a', 'p', ['10.0.0.2'], { labels: { role: 'x' } });
    same.status!.conditions = [{ type: 'Ready', status: 'False' }];
    assert.deepEqual(idx.update('a', 'p', same), []);
    assert.deepEqual(idx.update('a', 'p', pod('a', 'p', ['10.0.0.2'], { labels: { role: 'y' } })), ['a']);
    assert.deepEqual(idx.update('a', 'p', pod('a', 'p', ['10.0.0.4'], { labels: { role: 'y' } })), ['a']);
    assert.equal(idx.podAt('10.0.0.2'), undefined);
    assert.equal(idx.podAt('10.0.0.4'), 'a/p');
    assert.deepEqual(idx.update('a', 'gone', undefined), [], 'an unknown pod deleted changes nothing');
  });
});
