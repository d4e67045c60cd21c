// The status writer against the real API server: a status write lands only while the PortForward is
// of the writer's class (a JSON patch that tests spec.className first), so an operator cannot write
// the status of a forward that moved to another class, even with a write already on its way. It also
// reports the resourceVersion its write produced, by which the operator knows that write's watch
// event (controller/own-writes.ts).
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import { OwnWrites } from '../../src/controller/own-writes';
import { StatusWriteError, StatusWriter, statusFieldManager } from '../../src/kube/status';
import { TestCluster } from '../../tools/testenv/cluster';
import type { PortForwardSpec } from '../../src/api/v1alpha1';
import { applyPortForward, getPortForward, patchSpec } from '../support/portforward';
import { waitFor } from '../support/wait';

describe('status writer: writes only for its class, and tells its own writes by their echo', function () {
  let cluster: TestCluster;
  let ns: string;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('status-class');
  });

  after(async function () {
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('writes a PortForward of its class, refuses one of another class, and says why', async function () {
    const plain = new StatusWriter(cluster.kc, statusFieldManager(''));
    const alice = new StatusWriter(cluster.kc, statusFieldManager('alice'));
    await applyPortForward(cluster, ns, 'pf', { target: { pod: 'x' }, ports: [{ port: 80 }] });

    assert.equal(await plain.replace(ns, 'pf', { phase: 'Pending', message: 'plain' }, ''), true);
    await assert.rejects(alice.replace(ns, 'pf', { phase: 'Ready', message: 'alice' }, 'alice'), (err) => {
      assert.ok(err instanceof StatusWriteError);
      assert.equal(err.code, 422);
      assert.match(err.message, /its spec\.className is no longer alice \(another operator's now\)/);
      return true;
    });
    assert.equal((await getPortForward(cluster, ns, 'pf')).status?.message, 'plain');

    await patchSpec(cluster, ns, 'pf', { className: 'alice' });
    await assert.rejects(
      plain.replace(ns, 'pf', { phase: 'Ready', message: 'late' }, ''),
      /has a spec\.className now/,
    );
    assert.equal(await alice.replace(ns, 'pf', { phase: 'Ready', message: 'alice' }, 'alice'), true);
    const pf = await getPortForward(cluster, ns, 'pf');
    assert.deepEqual(pf.status, { phase: 'Ready', message: 'alice' }, 'the whole status replaced');

    await patchSpec(cluster, ns, 'pf', { className: null } as unknown as Partial<PortForwardSpec>);
    assert.equal(await plain.replace(ns, 'pf', { phase: 'Ready', message: 'plain again' }, ''), true);
  });

  it('reports a status the schema refuses as itself, not as a class change', async function () {
    const plain = new StatusWriter(cluster.kc);
    await applyPortForward(cluster, ns, 'bad', { target: { pod: 'x' }, ports: [{ port: 80 }] });
    await assert.rejects(
      plain.replace(ns, 'bad', { phase: 'Nope' as 'Ready' }, ''),
      (err: Error) => /Unsupported value: "Nope"/.test(err.message) && !/className/.test(err.message),
    );
  });

  it('returns false for a PortForward that is gone', async function () {
    assert.equal(await new StatusWriter(cluster.kc).replace(ns, 'gone', { phase: 'Ready' }, ''), false);
  });

  it("tells the watch event of its own write from another client's status edit (issue 24)", async function () {
    const own = new OwnWrites();
    const writer = new StatusWriter(cluster.kc, statusFieldManager(''), (namespace, name, rv) =>
      own.wrote(`${namespace}/${name}`, rv),
    );
    const other = new StatusWriter(cluster.kc, 'someone-else');
    await applyPortForward(cluster, ns, 'echo', { target: { pod: 'x' }, ports: [{ port: 80 }] });
    await applyPortForward(cluster, ns, 'raced', { target: { pod: 'x' }, ports: [{ port: 80 }] });
    const seen: { message?: string; rv?: string }[] = [];
    const req = await new k8s.Watch(cluster.kc).watch(
      `/apis/portforward.dev/v1alpha1/namespaces/${ns}/portforwards`,
      { fieldSelector: 'metadata.name=echo' },
      (_type: string, obj: { metadata?: { resourceVersion?: string }; status?: { message?: string } }) =>
        seen.push({ message: obj.status?.message, rv: obj.metadata?.resourceVersion }),
      () => undefined,
    );
    try {
      await waitFor('the watch to list the forward', () => seen.length > 0, 10_000);
      const mine = { observedGeneration: 1, phase: 'Pending' as const, message: 'mine' };
      assert.equal(await writer.replace(ns, 'echo', mine, ''), true);
      assert.equal(await other.patch(ns, 'echo', { message: 'theirs' }), true);
      await waitFor('both edits as watch events', () => seen.some((e) => e.message === 'theirs'), 10_000);
    } finally {
      req.abort();
    }
    const verdicts = seen.slice(1).map((e) => [e.message, own.isEcho(`${ns}/echo`, e.rv)]);
    assert.deepEqual(verdicts, [
      ['mine', true],
      ['theirs', false],
    ]);

    // A write that raced a spec change (its status reports on generation 1, the object is at 2) is not
    // noted: the event that carries both runs the key.
    await patchSpec(cluster, ns, 'raced', { ports: [{ port: 81 }] });
    const raced = { observedGeneration: 1, phase: 'Pending' as const, message: 'raced' };
    assert.equal(await writer.replace(ns, 'raced', raced, ''), true);
    assert.equal(own.size, 0, 'nothing noted for a write of an older generation');
  });
});
