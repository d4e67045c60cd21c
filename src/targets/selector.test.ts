// metav1.LabelSelector semantics, case by case.
import * as assert from 'node:assert/strict';
import { matchesSelector } from './selector';

describe('matchesSelector', function () {
  const labels = { app: 'web', tier: 'front' };
  const cases: [Parameters<typeof matchesSelector>[1], boolean][] = [
    [{}, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'db' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    [{ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
  ];
  cases.forEach(([sel, want], i) => {
    it(`case ${i}: ${JSON.stringify(sel)} -> ${want}`, function () {
      assert.equal(matchesSelector(labels, sel), want);
    });
  });
});
