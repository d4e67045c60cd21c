// Background processes of the test control plane: started detached (they outlive `make testenv-up`),
// logged to files, waited on with deadlines, and stopped by the pid recorded in the state file.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { TestEnvError } from './errors';

export interface Started {
  name: string;
  pid: number;
  /** The binary it runs: stop() kills a pid only while its command line still names it. */
  command: string;
  logFile: string;
  child?: ChildProcess;
}

export function startProcess(name: string, command: string, args: string[], logFile: string): Started {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new TestEnvError(`could not start ${name} (${command})`);
  child.unref();
  const p: Started = { name, pid: child.pid, command, logFile, child };
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

export function isAlive(p: { pid: number; command: string }): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
    const stat = fs.readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    // A zombie (state Z) has exited; an unrelated process may have been given the same pid.
    return cmdline.split('\0').includes(p.command) && !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(p: { pid: number; command: string }, graceMs = 10_000): Promise<void> {
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
  signal('SIGTERM');
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
export function freePort(): Promise<number> {
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
