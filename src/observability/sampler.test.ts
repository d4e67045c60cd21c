import * as assert from 'node:assert/strict';
import { LogSampler } from './sampler';

describe('log sampler', function () {
  it('lets one line per key and interval through, and says how many it held back', function () {
    let now = 0;
    const s = new LogSampler(10_000, () => now);
    assert.equal(s.take('a'), 0);
    assert.equal(s.take('a'), undefined);
    assert.equal(s.take('b'), 0, 'keys are independent');
    now = 9_999;
    assert.equal(s.take('a'), undefined);
    now = 10_000;
    assert.equal(s.take('a'), 2, 'two held back since the last line');
    assert.equal(s.take('a'), undefined);
    s.forget('a');
    assert.equal(s.take('a'), 0, 'a forgotten key starts afresh');
  });
});
