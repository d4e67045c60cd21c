import * as assert from 'node:assert/strict';
import { OwnWrites } from './own-writes';

describe('OwnWrites', function () {
  it("recognises the event of the write's own resourceVersion once, and no other", function () {
    const w = new OwnWrites();
    assert.equal(w.isEcho('ns/a', '10'), false, 'nothing written yet');
    w.wrote('ns/a', '11');
    assert.equal(w.isEcho('ns/b', '11'), false, 'another key');
    assert.equal(w.isEcho('ns/a', '11'), true);
    assert.equal(w.isEcho('ns/a', '11'), false, 'an echo is recognised once');
    assert.equal(w.size, 0);
  });

  it('runs an event of another resourceVersion (an edit by someone else), and stops waiting then', function () {
    const w = new OwnWrites();
    w.wrote('ns/a', '20');
    assert.equal(w.isEcho('ns/a', '19'), false, 'an older event delivered late');
    assert.equal(w.isEcho('ns/a', '20'), false, 'the echo after it is run too: never one skipped wrongly');
    w.wrote('ns/a', '30');
    w.wrote('ns/a', '31');
    assert.equal(w.isEcho('ns/a', '30'), false, 'only the latest write counts');
    assert.equal(w.size, 0, 'any event of the key ends the wait for its echo');
  });

  it('forgets a key whose write returned no resourceVersion', function () {
    const w = new OwnWrites();
    w.wrote('ns/a', '5');
    w.wrote('ns/a', undefined);
    assert.equal(w.size, 0);
    assert.equal(w.isEcho('ns/a', '5'), false);
  });

  it('forgets the write when a pass starts before its echo: the echo runs that key again', function () {
    const w = new OwnWrites();
    w.wrote('ns/a', '40');
    w.passStarts('ns/a'); // read the cache from before the write
    assert.equal(w.isEcho('ns/a', '40'), false);
  });
});
