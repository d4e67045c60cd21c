// Where the operator's kubeconfig comes from, as a user meets it (issue 9): --kubeconfig wins over a
// broken $KUBECONFIG or ~/.kube/config, and with no kubeconfig at all the operator exits at once with
// one line naming every place it looked, instead of looping on a refused connection.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { startOperator } from '../support/operator';

describe('operator: the kubeconfig at start-up', function () {
  this.timeout(60_000);
  let cluster: TestCluster;
  let dir: string;

  before(function () {
    cluster = TestCluster.connect();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfo-kc-'));
    fs.mkdirSync(path.join(dir, 'home', '.kube'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'malformed'), 'clusters: [: nope');
    fs.writeFileSync(path.join(dir, 'home', '.kube', 'config'), 'clusters: [: nope');
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const broken of ['/nonexistent/kc', 'malformed', 'a folder']) {
    it(`serves with a good --kubeconfig beside a ${broken === 'a folder' ? 'unreadable' : broken.startsWith('/') ? 'missing' : 'malformed'} $KUBECONFIG and a malformed ~/.kube/config`, async function () {
      const kubeconfigEnv =
        broken === 'a folder' ? dir : broken.startsWith('/') ? broken : path.join(dir, broken);
      const op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: ['default'],
        env: { ...process.env, KUBECONFIG: kubeconfigEnv, HOME: path.join(dir, 'home') },
      });
      try {
        assert.ok(op.alive());
        assert.doesNotMatch(op.logs(), /"level":"warn"/, 'a clean start logs no warning');
      } finally {
        assert.equal(await op.stop(), 0);
      }
    });
  }

  it('exits 2 at once with one line when there is no kubeconfig at all', function () {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: path.join(dir, 'empty-home') };
    delete env.KUBECONFIG;
    delete env.KUBERNETES_SERVICE_HOST;
    const res = spawnSync(
      process.execPath,
      [path.join(repoRoot, 'dist', 'main.js'), '--metrics-bind-address=0', '--health-probe-bind-address=0'],
      {
        env,
        encoding: 'utf8',
        timeout: 20_000, // a hang (today's loop on a refused connection) ends here, with status null
      },
    );
    assert.equal(res.status, 2, res.stderr);
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 1, res.stderr);
    assert.match(
      lines[0],
      /^portforward-operator: no kubeconfig: --kubeconfig is not given, \$KUBECONFIG is not set, .*empty-home\/\.kube\/config does not exist, and this is not a pod/,
    );
  });
});
