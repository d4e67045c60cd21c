import * as assert from 'node:assert/strict';
import { RelaySpecError } from '../errors';
import { SourceRanges } from './source-ranges';

function allowed(address: string, ...ranges: string[]): boolean {
  return new SourceRanges(ranges).allows(address);
}

describe('relay allowedSourceRanges (net.BlockList)', function () {
  it('matches IPv4 ranges, including their edges', function () {
    assert.equal(allowed('10.1.2.3', '10.0.0.0/8'), true);
    assert.equal(allowed('10.255.255.255', '10.0.0.0/8'), true);
    assert.equal(allowed('11.0.0.0', '10.0.0.0/8'), false);
    assert.equal(allowed('192.168.1.7', '192.168.1.0/29'), true);
    assert.equal(allowed('192.168.1.8', '192.168.1.0/29'), false);
    assert.equal(allowed('203.0.113.9', '0.0.0.0/0'), true);
  });

  it('treats a bare address as a single host, and masks host bits of a range', function () {
    assert.equal(allowed('127.0.0.1', '127.0.0.1'), true);
    assert.equal(allowed('127.0.0.2', '127.0.0.1'), false);
    assert.equal(allowed('10.9.9.9', '10.1.2.3/8'), true);
  });

  it('matches IPv6 ranges, compressed or not', function () {
    assert.equal(allowed('2001:db8::1', '2001:db8::/32'), true);
    assert.equal(allowed('2001:0db8:ffff:0:0:0:0:1', '2001:db8::/32'), true);
    assert.equal(allowed('2001:db9::1', '2001:db8::/32'), false);
    assert.equal(allowed('::1', '::1/128'), true);
    assert.equal(allowed('::2', '::1/128'), false);
    assert.equal(allowed('fe80::1%eth0', 'fe80::/10'), true);
    assert.equal(allowed('fd00::1', '::/0'), true);
  });

  it('matches an IPv4-mapped IPv6 client against IPv4 ranges', function () {
    assert.equal(allowed('::ffff:10.1.2.3', '10.0.0.0/8'), true);
    assert.equal(allowed('::ffff:127.0.0.1', '10.0.0.0/8'), false);
    assert.equal(allowed('::ffff:10.1.2.3', '::ffff:0:0/96'), true);
  });

  it('never matches a plain IPv6 client against IPv4 ranges; ::/0 admits IPv4 clients too', function () {
    assert.equal(allowed('2001:db8::1', '0.0.0.0/0'), false);
    assert.equal(allowed('10.0.0.1', '2001:db8::/32'), false);
    assert.equal(allowed('10.0.0.1', '::/0'), true); // BlockList reads IPv4 as IPv4-mapped IPv6
  });

  it('matches any of several ranges', function () {
    assert.equal(allowed('192.168.0.1', '10.0.0.0/8', '192.168.0.0/16'), true);
    assert.equal(allowed('172.16.0.1', '10.0.0.0/8', '192.168.0.0/16'), false);
  });

  it('rejects what is not a CIDR', function () {
    for (const bad of [
      '10.0.0.0/33',
      '10.0.0/8',
      'foo',
      '2001:db8::/129',
      '10.0.0.0/',
      '10.0.0.0/-1',
      '::1/1x',
    ]) {
      assert.throws(() => new SourceRanges([bad]), RelaySpecError, bad);
    }
  });

  it('does not match an unparsable client address', function () {
    assert.equal(allowed('', '0.0.0.0/0'), false);
    assert.equal(allowed('localhost', '0.0.0.0/0'), false);
  });
});
