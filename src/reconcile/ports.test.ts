import * as assert from 'node:assert/strict';
import { PortAllocator } from './ports';

describe('PortAllocator', function () {
  it('never gives two listeners the same port, and keeps a listener on its port', function () {
    const a = new PortAllocator({ min: 100, max: 102 });
    const p1 = a.allocate('ns/a', 'http');
    const p2 = a.allocate('ns/b', 'http');
    const p3 = a.allocate('ns/b', 'grpc');
    assert.deepEqual(new Set([p1, p2, p3]).size, 3);
    assert.equal(a.allocate('ns/a', 'http'), p1);
    assert.equal(a.allocate('ns/c', 'x'), undefined, 'the range is full');
  });

  it('does not allocate a port someone claimed, and refuses a claim on a held port', function () {
    const a = new PortAllocator({ min: 100, max: 101 });
    assert.ok(a.claim('ns/a', 'http', 100));
    assert.equal(a.allocate('ns/b', 'http'), 101);
    assert.equal(a.claim('ns/c', 'http', 100), false);
    assert.deepEqual(a.ownerOf(100), { key: 'ns/a', listenerId: 'http' });
  });

  it('skips a port another program holds after markBusy, for a while', function () {
    const a = new PortAllocator({ min: 100, max: 101 }, 1000);
    assert.equal(a.allocate('ns/a', 'x', 0), 100);
    a.markBusy('ns/a', 'x', 0);
    assert.equal(a.allocate('ns/a', 'x', 10), 101);
    a.release('ns/a');
    assert.equal(a.allocate('ns/b', 'x', 2000), 100, 'busy ports come back after the window');
  });

  it('releases all ports of a PortForward but those it keeps', function () {
    const a = new PortAllocator({ min: 100, max: 103 });
    a.allocate('ns/a', 'one');
    const two = a.allocate('ns/a', 'two');
    a.release('ns/a', new Set(['two']));
    assert.equal(a.portOf('ns/a', 'one'), undefined);
    assert.equal(a.portOf('ns/a', 'two'), two);
    a.release('ns/a');
    assert.equal(a.portOf('ns/a', 'two'), undefined);
  });
});
