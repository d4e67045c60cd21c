// A check of the relay bench from outside it (issue 21): what a user measuring with their own client
// sees. One operator PortForward and one `kubectl port-forward` (one process, both ports) to the same
// kwok pod, whose port 8080 leads to a source sending 256 MiB per connection and 8081 to a sink that
// answers after 256 MiB, both in this process beside the client, as a user's own script would have
// them. A plain Node client pulls and pushes through each in turn, the order alternating per pair;
// nothing is stopped, pinned or warmed. Prints every pair, then per direction the median ratio, its
// quartiles and range, and the medians of each five consecutive pairs (what a reader taking five
// pairs would have seen).
//
// Usage (a test control plane up, `make testenv-up`): node build/tools/bench/own-client.js [PAIRS]
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestCluster } from '../testenv/cluster';
import { applyPortForward, waitForStatus } from '../testenv/portforward';
import { cpuSeconds, ioCounters } from './proc';
import { freePortRange, startKubectl, startOperator } from './relays';
import { runCheck } from './cli';
import { fmt, median, percentile } from './stats';

const BYTES = 256 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 7);
type Direction = 'pull' | 'push';

function listen(handler: (c: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer((c) => {
    c.on('error', () => undefined);
    handler(c);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Writes BYTES to `s`, minding backpressure. */
function send(s: net.Socket): void {
  let sent = 0;
  const pump = (): void => {
    while (sent < BYTES) {
      sent += CHUNK.length;
      if (!s.write(CHUNK)) return void s.once('drain', pump);
    }
  };
  pump();
}

/** MiB/s of one transfer through local `port`: BYTES read (pull) or written until the sink answers (push). */
function transfer(dir: Direction, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const rate = (): number => BYTES / 1048576 / (Number(process.hrtime.bigint() - t0) / 1e9);
    let got = 0;
    const s = net.connect(port, '127.0.0.1', () => {
      if (dir === 'push') send(s);
    });
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (dir === 'push' || got >= BYTES) {
        s.destroy();
        resolve(rate());
      }
    });
  });
}

interface Pair {
  rate: number;
  cpu: number;
}

/** One transfer through one relay: MiB/s, its CPU s/GiB, and its KiB per read and per write call. */
type Figures = [number, number, number, number];

async function main(): Promise<void> {
  const pairs = Number(process.argv[2] ?? 30);
  const cluster = TestCluster.connect();
  const source = await listen((c) => send(c));
  const sink = await listen((c) => {
    let n = 0;
    c.on('data', (d: Buffer) => {
      n += d.length;
      if (n >= BYTES) c.end('k');
    });
  });
  const portOf = (s: net.Server): number => (s.address() as net.AddressInfo).port;
  const ns = await cluster.createNamespace('own-client');
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'own-client-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    await cluster.createPod(ns, 'src', [
      { port: 8080, targetPort: portOf(source) },
      { port: 8081, targetPort: portOf(sink) },
    ]);
    const started = await startOperator({
      kubeconfig: cluster.state.kubeconfig,
      namespaces: [ns],
      portRange: await freePortRange(10),
      logDir,
      label: 'own-client',
    });
    if (!started.ok) throw new Error(`the operator exited: ${started.firstLine}`);
    const op = started.op;
    stops.push(() => op.stop());
    await applyPortForward(cluster, ns, 'src', {
      target: { pod: 'src' },
      ports: [
        { port: 8080, name: 'pull' },
        { port: 8081, name: 'push' },
      ],
    });
    const pf = await waitForStatus(cluster, ns, 'src', 'Ready', (p) => p.status?.phase === 'Ready', 30_000);
    const opPort = (name: Direction): number => pf.status!.endpoints!.find((e) => e.name === name)!.localPort;
    const kubectl = await startKubectl({
      kubectl: cluster.state.kubectl,
      kubeconfig: cluster.state.kubeconfig,
      namespace: ns,
      pod: 'src',
      ports: [8080, 8081],
      logDir,
    });
    stops.push(() => kubectl.stop());
    const kcPort = (d: Direction): number => kubectl.localPorts.get(d === 'pull' ? 8080 : 8081)!;

    const one = async (pid: number, dir: Direction, port: number): Promise<Figures> => {
      const c0 = cpuSeconds(pid);
      const io0 = ioCounters([pid]);
      const mibs = await transfer(dir, port);
      const io1 = ioCounters([pid]);
      return [
        mibs,
        (cpuSeconds(pid) - c0) / (BYTES / 1024 ** 3),
        (io1.readBytes - io0.readBytes) / (io1.reads - io0.reads) / 1024,
        (io1.writeBytes - io0.writeBytes) / (io1.writes - io0.writes) / 1024,
      ];
    };
    const rows: Record<Direction, (Pair & { op: Figures; kc: Figures })[]> = {
      pull: [],
      push: [],
    };
    for (let i = 0; i < pairs; i++) {
      for (const dir of ['pull', 'push'] as const) {
        let o: Figures;
        let k: Figures;
        if (i % 2 === 0) {
          o = await one(op.pid, dir, opPort(dir));
          k = await one(kubectl.pid, dir, kcPort(dir));
        } else {
          k = await one(kubectl.pid, dir, kcPort(dir));
          o = await one(op.pid, dir, opPort(dir));
        }
        rows[dir].push({ rate: o[0] / k[0], cpu: o[1] / k[1], op: o, kc: k });
      }
      const r = (d: Direction): string =>
        `${d} ${fmt(rows[d][i].rate, 2)}x rate, ${fmt(rows[d][i].cpu, 2)}x CPU/GiB`;
      console.log(`pair ${i + 1}: ${r('pull')}; ${r('push')}`);
    }
    for (const dir of ['pull', 'push'] as const) {
      const xs = rows[dir];
      const summary = (k: keyof Pair): string => {
        const v = xs.map((x) => x[k]);
        return `median ${fmt(median(v), 2)}x, quartiles ${fmt(percentile(v, 25), 2)}-${fmt(percentile(v, 75), 2)}, range ${fmt(Math.min(...v), 2)}-${fmt(Math.max(...v), 2)}`;
      };
      const calls = (side: 'op' | 'kc'): string =>
        `${fmt(median(xs.map((x) => x[side][2])), 1)} KiB per read, ${fmt(median(xs.map((x) => x[side][3])), 1)} per write`;
      const fives: string[] = [];
      for (let j = 0; j + 5 <= xs.length; j += 5)
        fives.push(fmt(median(xs.slice(j, j + 5).map((x) => x.rate)), 2));
      console.log(
        `${dir}: rate ${summary('rate')}; CPU/GiB ${summary('cpu')}; ` +
          `operator ${fmt(median(xs.map((x) => x.op[0])), 0)} MiB/s, ${fmt(median(xs.map((x) => x.op[1])), 2)} s/GiB, ${calls('op')}; ` +
          `kubectl ${fmt(median(xs.map((x) => x.kc[0])), 0)} MiB/s, ${fmt(median(xs.map((x) => x.kc[1])), 2)} s/GiB, ${calls('kc')}; ` +
          `5-pair medians of the rate ratio: ${fives.join(', ')}`,
      );
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    source.close();
    sink.close();
    await cluster.deleteNamespace(ns);
  }
}

runCheck(main);
