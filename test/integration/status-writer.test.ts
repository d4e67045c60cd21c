// The status writer against the real API server: a status write lands only while the PortForward is
// of the writer's class (a JSON patch that tests spec.className first), so an operator cannot write
// the status of a forward that moved to another class, even with a write already on its way.
import * as assert from 'node:assert/strict';
import { StatusWriteError, StatusWriter, statusFieldManager } from '../../src/kube/status';
import { TestCluster } from '../../tools/testenv/cluster';
import type { PortForwardSpec } from '../../src/api/v1alpha1';
import { applyPortForward, getPortForward, patchSpec } from '../support/portforward';

describe('status writer: writes only for its class', function () {
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
});
