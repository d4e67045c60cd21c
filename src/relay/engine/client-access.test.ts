import * as assert from 'node:assert/strict';
import { ClientAccess } from './client-access';
import { RelaySpecError } from '../errors';

describe('relay client access (allowedSourceRanges and allowedClientAddresses)', function () {
  it('admits everyone when neither list is given', function () {
    const a = new ClientAccess(undefined, undefined);
    assert.equal(a.refuses('203.0.113.9'), undefined);
    assert.equal(a.refuses('::1'), undefined);
  });

  it('with ranges only, refuses clients outside them by the sourceRanges rule', function () {
    const a = new ClientAccess(['10.0.0.0/8'], undefined);
    assert.equal(a.refuses('10.1.2.3'), undefined);
    assert.equal(a.refuses('192.168.0.1'), 'sourceRanges');
  });

  it('with client addresses only, admits exactly those, IPv4-mapped forms too', function () {
    const a = new ClientAccess(undefined, ['127.244.0.2', '2001:db8::7']);
    assert.equal(a.refuses('127.244.0.2'), undefined);
    assert.equal(a.refuses('::ffff:127.244.0.2'), undefined);
    assert.equal(a.refuses('2001:0db8:0:0:0:0:0:7'), undefined);
    assert.equal(a.refuses('127.244.0.3'), 'clients');
    assert.equal(a.refuses('127.0.0.1'), 'clients');
    assert.equal(a.refuses('2001:db8::8'), 'clients');
    assert.equal(a.refuses(''), 'clients');
  });

  it('with an empty client list and no ranges, admits nobody', function () {
    const a = new ClientAccess([], []);
    assert.equal(a.refuses('127.0.0.1'), 'clients');
    assert.equal(a.refuses('10.0.0.1'), 'clients');
  });

  it('with both, admits a client that either admits', function () {
    const a = new ClientAccess(['127.0.0.1/32'], ['127.244.0.9']);
    assert.equal(a.refuses('127.0.0.1'), undefined);
    assert.equal(a.refuses('127.244.0.9'), undefined);
    assert.equal(a.refuses('127.244.0.10'), 'clients');
  });

  it('rejects an address that is not one', function () {
    for (const bad of ['10.0.0.0/8', 'pod-a', 'fe80::1%eth0', '']) {
      assert.throws(() => new ClientAccess(undefined, [bad]), RelaySpecError, bad);
    }
  });

  it('knows when the next ensure sends the same lists', function () {
    const a = new ClientAccess(['10.0.0.0/8'], ['10.1.1.1']);
    assert.equal(a.same(['10.0.0.0/8'], ['10.1.1.1']), true);
    assert.equal(a.same(['10.0.0.0/8'], ['10.1.1.2']), false);
    assert.equal(a.same(['10.0.0.0/8'], undefined), false);
    assert.equal(new ClientAccess(undefined, []).same(undefined, []), true);
  });
});
