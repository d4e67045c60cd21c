// The benchmark's two child processes: the target servers (targets.ts) and the load client
// (client.ts), forked with an IPC channel. Each request has a deadline; a child that dies fails the
// request in flight with its exit code instead of hanging the benchmark.
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import type { Verify } from './payload';
import {
  ClientReply,
  ClientRequest,
  ConnectsResult,
  EchoesResult,
  Endpoint,
  StreamResult,
  TargetPorts,
  TargetsMessage,
} from './proto';

function forkChild(file: string, args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = fork(path.join(__dirname, file), args, {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.disconnect(); // the child exits on 'disconnect'
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export interface Targets {
  ports: TargetPorts;
  pid: number;
  stop(): Promise<void>;
}

/** `seed`: 32 bytes of hex, the same as the load client's (payload.ts). */
export async function startTargets(streamBytes: number, seed: string, timeoutMs = 20_000): Promise<Targets> {
  const { child, exited } = forkChild('targets.js', [String(streamBytes), seed]);
  const ports = await new Promise<TargetPorts>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the target servers were not up after ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('message', (m: TargetsMessage) => {
      clearTimeout(timer);
      if (m.type === 'ready') resolve(m.ports);
      else reject(new Error(`the target servers failed: ${m.error}`));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the target servers exited with ${String(code)} before listening`));
    });
  }).catch(async (err: unknown) => {
    await stopChild(child, exited);
    throw err;
  });
  return { ports, pid: child.pid!, stop: () => stopChild(child, exited) };
}

/** A local port (127.0.0.1), or a host and port. */
export type Destination = number | Endpoint;
const endpoint = (d: Destination): Endpoint => (typeof d === 'number' ? { host: '127.0.0.1', port: d } : d);

export interface LoadClient {
  pid: number;
  verify: Verify;
  pull(to: Destination, bytes: number, timeoutMs: number): Promise<StreamResult>;
  push(to: Destination, bytes: number, timeoutMs: number): Promise<StreamResult>;
  connects(to: Destination, count: number, timeoutMs: number): Promise<ConnectsResult>;
  echoes(to: Destination, concurrency: number, bytes: number, timeoutMs: number): Promise<EchoesResult>;
  stop(): Promise<void>;
}

export function startLoadClient(seed: string, verify: Verify): LoadClient {
  const { child, exited } = forkChild('client.js', [seed]);
  let next = 1;
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (m: ClientReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(m.error));
  });
  void exited.then((code) => {
    for (const p of pending.values()) p.reject(new Error(`the load client exited with ${String(code)}`));
    pending.clear();
  });
  /** The child enforces `timeoutMs` itself; this deadline only catches a child that stopped answering. */
  const request = <T>(req: ClientRequest, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!child.connected) return reject(new Error('the load client is not running'));
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the load client did not answer ${req.op} within ${timeoutMs + 30_000} ms`));
      }, timeoutMs + 30_000);
      pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ ...req, id });
    });
  return {
    pid: child.pid!,
    verify,
    pull: (to, bytes, timeoutMs) => request({ op: 'pull', to: endpoint(to), bytes, timeoutMs }, timeoutMs),
    push: (to, bytes, timeoutMs) =>
      request({ op: 'push', to: endpoint(to), bytes, verify, timeoutMs }, timeoutMs),
    connects: (to, count, timeoutMs) =>
      request({ op: 'connects', to: endpoint(to), count, timeoutMs }, timeoutMs * count),
    echoes: (to, concurrency, bytes, timeoutMs) =>
      request({ op: 'echoes', to: endpoint(to), concurrency, bytes, verify, timeoutMs }, timeoutMs),
    stop: () => stopChild(child, exited),
  };
}
