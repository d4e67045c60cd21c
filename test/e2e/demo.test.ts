// `make demo` as a newcomer meets it, and the examples as a user applies them. The demo runs as its
// compiled program (what `make demo` runs after `make build`) in a state folder of its own, so it
// starts a second control plane beside the suite's without touching it.
import * as assert from 'node:assert/strict';
import { ChildProcessByStdio, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
// Plain YAML, as the file has it: client-node's loadAllYaml (2.x) deserializes built-in kinds into
// its model classes, which drop fields they do not know (the dry run is to catch those).
import { loadAll } from 'js-yaml';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { processesUsing } from '../../tools/testenv/procs';
import { connectRefused } from '../support/net';
import { poll } from '../support/wait';

const DEMO = path.join(repoRoot, 'build', 'tools', 'demo', 'main.js');

interface DemoRun {
  child: ChildProcessByStdio<null, Readable, Readable>;
  output(): string;
  exited: Promise<number | null>;
}

function startDemo(env: Record<string, string>): DemoRun {
  const child = spawn(process.execPath, [DEMO], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Everything a finished demo must have removed: its processes, its folder and its lock. */
function assertNothingLeft(dir: string): void {
  assert.deepEqual(
    processesUsing(dir).map((p) => p.cmdline),
    [],
    'no process of the demo is left running',
  );
  assert.equal(fs.existsSync(dir), false, `${dir} is removed`);
  assert.equal(fs.existsSync(`${dir}.lock`), false, 'the lock file is removed');
}

describe('make demo', function () {
  this.timeout(300_000);
  let parent: string;
  let dir: string;

  beforeEach(function () {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'pfo-demo-e2e-'));
    dir = path.join(parent, 'state');
  });

  afterEach(function () {
    fs.rmSync(parent, { recursive: true, force: true });
  });

  it('with DEMO_ONESHOT=1 shows the forward Ready and a working curl, exits 0 and leaves nothing behind', async function () {
    const run = startDemo({ DEMO_ONESHOT: '1', PFO_DEMO_DIR: dir });
    const code = await run.exited;
    const out = run.output();
    assert.equal(code, 0, `exit code; the demo printed:\n${out}`);

    assert.match(out, /binaries from (cache|\$KUBE_ASSETS|PATH)/, 'no rebuild of the binaries');
    assert.doesNotMatch(out, /building the test control plane/);
    assert.match(
      out,
      /\$ kubectl get pf -n demo\nNAME +TARGET +POD +PORTS +ENDPOINT +PHASE +ACTIVE +AGE +CLASS\nkuard +\{"pod":"kuard"\} +kuard +8080 +tcp:\/\/127\.0\.0\.1:\d+ +Ready /,
    );
    const curl = /\$ curl (http:\/\/127\.0\.0\.1:(\d+)\/)\n(.*)\n/.exec(out);
    assert.ok(curl, `a curl line in:\n${out}`);
    assert.match(curl[3], /^Hello from kuard-demo, served by pod demo\/kuard \(container port 8080\)\.$/);
    assert.match(out, /request #1: GET \//);
    assert.match(
      out,
      /\S*bin\/kubectl --kubeconfig \S*kubeconfig get pf -n demo/,
      'a kubectl line for the test env',
    );
    assert.match(out, /demo stopped; nothing of it is left running/);

    assertNothingLeft(dir);
    assert.ok(await connectRefused(Number(curl[2])), 'the forward port is closed');
  });

  it('runs until SIGINT (Ctrl-C), then stops everything and exits 0', async function () {
    const run = startDemo({ PFO_DEMO_DIR: dir });
    try {
      await poll('the demo to wait for Ctrl-C', 120_000, () => {
        if (run.child.exitCode !== null) throw new Error(`the demo exited early:\n${run.output()}`);
        return Promise.resolve(/runs until you press Ctrl-C/.test(run.output()));
      });
      assert.ok(processesUsing(dir).length >= 5, 'the control plane and the operator run meanwhile');
      const port = Number(/\$ curl http:\/\/127\.0\.0\.1:(\d+)\//.exec(run.output())![1]);
      assert.equal(await connectRefused(port), false, 'the forward port is open while the demo runs');
      run.child.kill('SIGINT');
      const code = await run.exited;
      assert.equal(code, 0, run.output());
      assert.match(run.output(), /SIGINT: stopping the demo/);
      assertNothingLeft(dir);
    } finally {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
  });

  it('refuses to start a second demo on a folder a running demo holds', async function () {
    // A stand-in for a running demo: a process whose command line names the demo program.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', DEMO], { stdio: 'ignore' });
    try {
      fs.writeFileSync(`${dir}.lock`, `${holder.pid}\n`);
      const run = startDemo({ DEMO_ONESHOT: '1', PFO_DEMO_DIR: dir });
      assert.equal(await run.exited, 1);
      assert.match(run.output(), new RegExp(`another demo \\(pid ${holder.pid}\\) uses`));
      assert.equal(
        fs.readFileSync(`${dir}.lock`, 'utf8').trim(),
        String(holder.pid),
        'the lock is left alone',
      );
      assert.equal(fs.existsSync(dir), false, 'nothing was started');
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('examples/', function () {
  const folder = path.join(repoRoot, 'examples');
  const files = fs.readdirSync(folder).filter((f) => f.endsWith('.yaml'));
  let cluster: TestCluster;
  let ns: string;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('examples');
  });

  after(async function () {
    if (ns) await cluster.deleteNamespace(ns);
  });

  it('has a line saying what each example shows', function () {
    const index = fs.readFileSync(path.join(folder, 'README.md'), 'utf8');
    for (const f of files) {
      assert.match(fs.readFileSync(path.join(folder, f), 'utf8'), /^# \S/, `${f} starts with a comment`);
      assert.ok(index.includes(`(${f})`), `examples/README.md links ${f}`);
    }
  });

  for (const file of files) {
    it(`${file} is accepted by the API server (server-side dry run)`, function () {
      const docs = (loadAll(fs.readFileSync(path.join(folder, file), 'utf8')) as Manifest[]).filter(
        (d) => d && d.kind !== 'Namespace',
      );
      for (const d of docs) d.metadata.namespace = ns;
      const res = cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }),
      });
      assert.equal(res.code, 0, res.stderr);
    });
  }
});

interface Manifest {
  kind: string;
  metadata: { namespace?: string };
  spec?: Record<string, unknown>;
}
