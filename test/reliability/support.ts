// Shared parts of the reliability scenarios (make test-reliability; a reduced round count runs in make
// test): how many rounds, what the operator process holds (memory, fds, listeners), and the lines each
// scenario prints, which docs/reliability.md quotes.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import WebSocket from 'ws';
import { httpGet } from '../../tools/testenv/procs';
import type { OperatorProcess } from '../support/operator';
import { describeReport, failuresOutside, TrafficReport, verifiedEcho, Window } from '../support/traffic';
import { poll } from '../support/wait';

/** make test-reliability sets RELIABILITY_FULL=1: every scenario at its full size. */
export const FULL = process.env.RELIABILITY_FULL === '1';

/** The full count under make test-reliability, the reduced one under make test. */
export function size(full: number, reduced: number): number {
  return FULL ? full : reduced;
}

/** Prints a figure of a scenario, indented under its test (docs/reliability.md quotes these lines). */
export function figure(line: string): void {
  console.log(`      [figure] ${line}`);
}

export interface ProcessFootprint {
  rssBytes: number;
  fds: number;
  /** TCP sockets in LISTEN state the process holds. */
  listeners: number;
  /** TCP sockets whose peer closed and that the process has not closed yet (CLOSE_WAIT). */
  closeWait: number;
  /** TCP sockets to `remotePort` (the API server's: watches, writes and the SPDY session pool). */
  toRemote: number;
}

/** What the process holds now, from /proc. */
export function footprint(pid: number, remotePort = 0): ProcessFootprint {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  const inodes = new Set<string>();
  let fds = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  let listeners = 0;
  let closeWait = 0;
  let toRemote = 0;
  for (const table of ['tcp', 'tcp6']) {
    const lines = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (!inodes.has(f[9])) continue; // f[9]: the socket's inode
      if (f[3] === '0A') listeners++; // TCP_LISTEN
      if (f[3] === '08') closeWait++; // TCP_CLOSE_WAIT
      if (remotePort && parseInt(f[2].split(':')[1], 16) === remotePort) toRemote++;
    }
  }
  return { rssBytes: rssKb * 1024, fds, listeners, closeWait, toRemote };
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Samples the process's RSS every `everyMs` until stopped; returns the largest seen. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let max = 0;
  const take = (): void => {
    try {
      max = Math.max(max, footprint(pid).rssBytes);
    } catch {
      // the process is gone: keep what was seen
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return max;
    },
  };
}

/**
 * The operator's V8 heap in use after a full garbage collection, through the inspector (start the
 * operator with NODE_OPTIONS=--inspect=127.0.0.1:0): RSS alone cannot tell a leak from a collector
 * that has not run yet.
 */
export async function heapAfterGc(op: OperatorProcess): Promise<number> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(op.logs())?.[1];
  assert.ok(url, 'the operator runs with --inspect (NODE_OPTIONS)');
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let id = 0;
  const call = (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const mine = ++id;
      const onMessage = (data: WebSocket.RawData): void => {
        const msg = JSON.parse((data as Buffer).toString('utf8')) as {
          id?: number;
          result?: unknown;
          error?: unknown;
        };
        if (msg.id !== mine) return;
        ws.off('message', onMessage);
        if (msg.error) reject(new Error(JSON.stringify(msg.error)));
        else resolve(msg.result);
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id: mine, method, params }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const r = (await call('Runtime.evaluate', {
      expression: 'process.memoryUsage().heapUsed',
      returnByValue: true,
    })) as { result: { value: number } };
    return r.result.value;
  } finally {
    ws.close();
  }
}

/** Samples `portforward_buffered_bytes` of one PortForward from the operator's /metrics; the largest seen. */
export function sampleBuffered(
  metricsPort: number,
  namespace: string,
  name: string,
  everyMs = 100,
): { stop(): Promise<number> } {
  let max = 0;
  let busy: Promise<void> = Promise.resolve();
  const take = (): void => {
    busy = httpGet(`http://127.0.0.1:${metricsPort}/metrics`).then(
      (res) => {
        for (const line of res.body.split('\n')) {
          if (!line.startsWith('portforward_buffered_bytes{')) continue;
          if (!line.includes(`name="${name}"`) || !line.includes(`namespace="${namespace}"`)) continue;
          max = Math.max(max, Number(line.slice(line.lastIndexOf(' ') + 1)));
        }
      },
      () => undefined,
    );
  };
  const timer = setInterval(take, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await busy;
      return max;
    },
  };
}

/** Polls until a verified echo through `port` succeeds; returns when it did. */
export async function servedAgain(port: number, what: string, timeoutMs = 60_000): Promise<number> {
  await poll(what, timeoutMs, async () => (await verifiedEcho(port, 1024, 5_000)).ok);
  return Date.now();
}

/**
 * The checks every scenario makes of its traffic: nothing corrupted, no failure outside the windows
 * in which the operator or the API server was down, and no more failures than those windows explain
 * (every connection attempted in a window, plus those in flight when it began).
 */
export function assertFailuresExplained(
  what: string,
  r: TrafficReport,
  windows: Window[],
  perSecond: number,
): void {
  figure(
    `${describeReport(what, r)}; down ${windows.map((w) => `${((w.to - w.from) / 1000).toFixed(1)} s`).join(' + ') || 'never'}`,
  );
  assert.equal(r.corrupted, 0, 'no echo came back different from what was sent');
  const outside = failuresOutside(r, windows);
  assert.deepEqual(
    outside.map((a) => `${a.reason} at ${new Date(a.start).toISOString()}`),
    [],
    'no connection failed while the operator and the API server were up',
  );
  const downMs = windows.reduce((n, w) => n + (w.to - w.from), 0);
  const explained = Math.ceil((downMs / 1000) * perSecond) + windows.length * Math.ceil(perSecond) + 2;
  assert.ok(r.failed <= explained, `${r.failed} failures; the downtime explains at most ${explained}`);
}

/** Asserts the operator is still running, with its log's tail when it is not. */
export function assertAlive(op: OperatorProcess): void {
  assert.ok(op.alive(), `the operator is still running; its log ends:\n${op.logs().slice(-3000)}`);
}
