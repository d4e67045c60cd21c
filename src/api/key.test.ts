import * as assert from 'node:assert/strict';
import { keyOf, parseKey } from './key';

describe('object keys', function () {
  it('makes namespace/name from metadata or from a namespace and a name, and reads it back', function () {
    const k = keyOf({ metadata: { namespace: 'demo', name: 'web' } });
    assert.equal(k, 'demo/web');
    assert.equal(keyOf({ namespace: 'demo', name: 'web' }), k);
    assert.deepEqual(parseKey(k), { namespace: 'demo', name: 'web' });
  });

  it('refuses a string that is not a key', function () {
    for (const bad of ['web', 'a/b/c', '']) assert.throws(() => parseKey(bad), RangeError, bad);
  });
});
