// Background processes of the test control plane: started detached (they outlive `make testenv-up`),
// logged to files, waited on with deadlines, and stopped by the pid recorded in the state file, but
// only while that pid is still the process that was started (same binary, same start time, and a
// command line naming the state folder): a pid the kernel gave to another process since, say another
// checkout's kwok, is never signalled.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { TestEnvError } from './errors';

/** A process as the state file records it. */
export interface ProcessRef {
  pid: number;
  /** The binary it runs: a pid is signalled only while its command line still names it. */
  command: string;
  /** Its start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  startTicks?: number;
}

export interface Started extends ProcessRef {
  name: string;
  logFile: string;
  args: string[];
  child?: ChildProcess;
}

/** The open-file limit a cluster's kube-apiserver and kubelet get from systemd or containerd (kubeadm, kind). */
export const CLUSTER_NOFILE = 1048576;

/**
 * Raises the open-file limit of process `pid` (soft and hard) to CLUSTER_NOFILE with util-linux's
 * prlimit. A shell's usual 1,024 or 20,000 would cap the test env below what a cluster holds: each
 * port-forward session is two of kube-apiserver's sockets, so 20,000 stops short of 10,000 sessions
 * (seen: BENCH_SESSIONS_N=10000 never had them all open at once). Raising a hard limit needs root (or
 * CAP_SYS_RESOURCE); without, what was in force stays and the returned line says so.
 */
export function raiseOpenFileLimit(pid: number): string | undefined {
  const out = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${CLUSTER_NOFILE}:${CLUSTER_NOFILE}`], {
    encoding: 'utf8',
  });
  if (out.status === 0) return undefined;
  const why = (out.error?.message ?? out.stderr).trim();
  return `could not raise the open-file limit of pid ${pid} to ${CLUSTER_NOFILE} (${why}); it stays as it was`;
}

export function startProcess(name: string, command: string, args: string[], logFile: string): Started {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new TestEnvError(`could not start ${name} (${command})`);
  child.unref();
  const refused = raiseOpenFileLimit(child.pid);
  if (refused) fs.appendFileSync(logFile, `[testenv] ${refused}\n`);
  const p: Started = {
    name,
    pid: child.pid,
    command,
    args,
    logFile,
    child,
    startTicks: startTicks(child.pid),
  };
  child.on('exit', () => {
    p.child = undefined;
  });
  return p;
}

export function lastLines(file: string, n = 8): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n    ');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `ready` until it resolves true, the deadline passes, or the process dies; a dead process or a
 * missed deadline is reported with the last lines of its log, so a failure never looks like a hang.
 */
export async function waitReady(
  p: Started,
  what: string,
  timeoutMs: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive(p)) {
      throw new TestEnvError(
        `${p.name} exited during start-up; the last lines of ${p.logFile} say:\n    ${lastLines(p.logFile)}` +
          hint(p.logFile),
      );
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new TestEnvError(
        `${p.name} was not ${what} after ${timeoutMs / 1000} s; the last lines of ${p.logFile} say:\n    ${lastLines(p.logFile)}`,
      );
    }
    await sleep(200);
  }
}

function hint(logFile: string): string {
  const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
  if (/address already in use/i.test(text)) {
    return '\n  A port it needs is taken by another program: free it, or run again to pick other free ports.';
  }
  return '';
}

/**
 * Whether the process still runs: not a zombie, its command line names `command`, and (when recorded)
 * it started when the recorded one did, so a pid given to another process since is not it.
 */
export function isAlive(p: ProcessRef): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
    const stat = fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    if (p.startTicks !== undefined && parseStartTicks(stat) !== p.startTicks) return false;
    // A zombie (state Z) has exited; an unrelated process may have been given the same pid.
    return cmdline.split('\0').includes(p.command) && !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Whether the process runs and its command line names a path inside `dir`: one of that env's. */
export function belongsTo(p: ProcessRef, dir: string): boolean {
  if (!isAlive(p)) return false;
  try {
    const argv = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0');
    const prefix = path.resolve(dir) + path.sep;
    return argv.some((a) => a.includes(prefix));
  } catch {
    return false;
  }
}

/** A process's start time in clock ticks since boot, or undefined when it is gone. */
export function startTicks(pid: number): number | undefined {
  try {
    return parseStartTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function parseStartTicks(stat: string): number | undefined {
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields count from its end.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[19]); // field 22 overall; rest[0] is field 3
  return Number.isFinite(ticks) ? ticks : undefined;
}

export interface FoundProcess extends ProcessRef {
  cmdline: string;
}

/** Live processes (not zombies, not this one) whose command line names a path inside `dir`. */
export function processesUsing(dir: string): FoundProcess[] {
  const prefix = path.resolve(dir) + path.sep;
  const found: FoundProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) continue;
      if (argv.some((a) => a.includes(prefix))) {
        found.push({
          pid: Number(entry),
          command: argv[0],
          startTicks: parseStartTicks(stat),
          cmdline: argv.join(' '),
        });
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/**
 * SIGTERM to the process group, SIGKILL after `graceMs` (0: SIGKILL at once, a crash); resolves once
 * the process is gone.
 */
export async function stopProcess(p: ProcessRef, graceMs = 10_000): Promise<void> {
  if (!isAlive(p)) return;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(-p.pid, s);
    } catch {
      try {
        process.kill(p.pid, s);
      } catch {
        // already gone
      }
    }
  };
  if (graceMs > 0) signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(p) && Date.now() < deadline) await sleep(100);
  if (isAlive(p)) {
    signal('SIGKILL');
    while (isAlive(p)) await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port that is free now (the kernel's choice), for a process that cannot bind port 0 itself. */
/**
 * Ports freePort handed out in this process. The kernel may offer a port again as soon as it is
 * closed, so two calls in a row could name the same port for two servers (seen: the demo's metrics
 * and health ports); a port is never handed out twice.
 */
const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that nothing listened on just now, and that no earlier call returned. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await unusedPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new TestEnvError('found no free TCP port on 127.0.0.1 in 100 tries');
}

function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Fails with a clear sentence when a port someone asked for is taken. */
export function assertPortFree(port: number, who: string, envVar: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new TestEnvError(
          `port ${port} for ${who} is already in use (${err.code}): stop the program that holds it ` +
            `(\`ss -ltnp 'sport = :${port}'\` names it), or unset ${envVar} to let the test env choose a free port.`,
        ),
      );
    });
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
  });
}

/** GET a URL; resolves with the status code and body. TLS is not verified: only for local readiness polls. */
export function httpGet(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(
      url,
      {
        rejectUnauthorized: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Runs a command to its end and returns its stdout; a non-zero exit throws a TestEnvError naming the
 * command (as `name`, default the binary) with its arguments and what it printed on stderr.
 */
export function runChecked(
  command: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; name?: string; shownArgs?: string[] } = {},
): string {
  const out = spawnSync(command, args, {
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
  });
  if (out.status !== 0) {
    const what = `${opts.name ?? path.basename(command)} ${(opts.shownArgs ?? args).join(' ')}`;
    throw new TestEnvError(`${what} failed: ${(out.stderr || out.error?.message || '').trim()}`);
  }
  return out.stdout;
}
