// Unit tests of the test control plane's pure parts: token minting, version pins, port checks.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { down, TestEnvState, writeState } from '../../tools/testenv/controlplane';
import { TestEnvError } from '../../tools/testenv/errors';
import { assertPortFree, isAlive, ProcessRef, startTicks } from '../../tools/testenv/procs';
import { createServer, mintToken, verifyToken } from '../../tools/testenv/token-webhook';
import { readVersions } from '../../tools/testenv/versions';

describe('token webhook', function () {
  const secret = 'test-secret';

  it('verifies a token it minted, with the user and groups', function () {
    const token = mintToken(secret, { user: 'alice', groups: ['dev', 'ops'] });
    assert.deepEqual(verifyToken(secret, token), { user: 'alice', groups: ['dev', 'ops'] });
  });

  it('rejects a token under another secret, a tampered payload, and foreign tokens', function () {
    const token = mintToken(secret, { user: 'alice', groups: [] });
    assert.equal(verifyToken('other', token), undefined);
    const [, , sig] = token.split('.');
    const forged = `pfo.${Buffer.from(JSON.stringify({ user: 'root', groups: ['system:masters'] })).toString('base64url')}.${sig}`;
    assert.equal(verifyToken(secret, forged), undefined);
    assert.equal(verifyToken(secret, 'eyJhbGciOi.something.else'), undefined);
    assert.equal(verifyToken(secret, 'pfo.'), undefined);
  });

  it('answers a TokenReview over HTTP', async function () {
    const server = createServer(secret);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const review = async (
        token: string,
      ): Promise<{ status: { authenticated: boolean; user?: { username: string } } }> =>
        JSON.parse(await post(port, JSON.stringify({ kind: 'TokenReview', spec: { token } }))) as never;
      const ok = await review(mintToken(secret, { user: 'bob', groups: ['g'] }));
      assert.equal(ok.status.authenticated, true);
      assert.equal(ok.status.user?.username, 'bob');
      assert.equal((await review('nope')).status.authenticated, false);
    } finally {
      server.close();
    }
  });
});

describe('version pins', function () {
  it('reads Kubernetes, etcd and kwok versions from the helper go.mod', function () {
    const v = readVersions();
    assert.match(v.kubernetes, /^v1\.(3[3-9]|[4-9]\d)\.\d+$/, 'Kubernetes 1.33 or newer');
    assert.match(v.etcd, /^v3\.\d+\.\d+$/);
    assert.match(v.kwok, /^v0\.\d+\.\d+$/);
  });

  it('names the file when a pin is missing', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pins-'));
    const file = path.join(dir, 'go.mod');
    fs.writeFileSync(file, 'module x\n\nrequire k8s.io/kubernetes v1.36.3\n');
    assert.throws(
      () => readVersions(file),
      (err: Error) => err instanceof TestEnvError && err.message.includes(file),
    );
  });
});

describe('port checks', function () {
  it('says which port is taken and how to get past it', async function () {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      await assert.rejects(assertPortFree(port, 'kube-apiserver', 'TESTENV_APISERVER_PORT'), (err: Error) => {
        assert.ok(err instanceof TestEnvError);
        assert.match(err.message, new RegExp(`port ${port} for kube-apiserver is already in use`));
        assert.match(err.message, /unset TESTENV_APISERVER_PORT/);
        return true;
      });
    } finally {
      holder.close();
    }
  });
});

describe('testenv down (issue 11, point 7)', function () {
  const spawned: ProcessRef[] = [];
  /** A long-running process whose command line names `dir`, like every control-plane process. */
  function idle(dir: string): ProcessRef {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', path.join(dir, 'marker')], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    const p = { pid: child.pid!, command: process.execPath, startTicks: startTicks(child.pid!) };
    spawned.push(p);
    return p;
  }
  after(function () {
    for (const p of spawned) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  it('stops a component restarted since the start, and never a process of another state folder', async function () {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'testenv-down-'));
    const mine = path.join(root, 'mine');
    const theirs = path.join(root, 'theirs');
    for (const d of [mine, theirs]) fs.mkdirSync(d);
    const etcd = idle(mine);
    const restarted = idle(mine); // kwok after a restart: not the pid state.json recorded at start
    const foreign = idle(theirs); // another checkout's kwok, given the pid this state recorded
    const state: TestEnvState = {
      apiVersion: 'testenv.portforward.dev/v1',
      server: 'https://127.0.0.1:1',
      kubeconfig: path.join(mine, 'kubeconfig'),
      webhookSecretFile: path.join(mine, 'secret'),
      kubectl: '/nonexistent/kubectl',
      versions: { kubernetes: 'v1.36.3', etcd: 'v3.6.0', kwok: 'v0.8.0' },
      processes: [
        { name: 'etcd', ...etcd, logFile: path.join(mine, 'etcd.log') },
        { name: 'kwok', pid: foreign.pid, command: process.execPath, logFile: path.join(mine, 'kwok.log') },
      ],
    };
    writeState(state, mine);
    const saved = process.env.TESTENV_DIR;
    process.env.TESTENV_DIR = mine;
    try {
      await down(() => undefined);
    } finally {
      if (saved === undefined) delete process.env.TESTENV_DIR;
      else process.env.TESTENV_DIR = saved;
    }
    assert.equal(isAlive(etcd), false, 'the recorded process is stopped');
    assert.equal(isAlive(restarted), false, 'the restarted one, found by its command line, too');
    assert.equal(isAlive(foreign), true, 'the process of the other folder runs on');
    assert.equal(fs.existsSync(mine), false);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('tells a reused pid from the process that was started by its start time', function () {
    const p = idle(os.tmpdir());
    assert.equal(isAlive(p), true);
    assert.equal(isAlive({ ...p, startTicks: (p.startTicks ?? 0) + 1 }), false);
  });
});

function post(port: number, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/authenticate' }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve(data));
    });
    req.on('error', reject);
    req.end(body);
  });
}
