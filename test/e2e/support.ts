// Helpers of the end-to-end suites: PortForward objects through the real API, waits on their status.
import * as net from 'node:net';
import { PortForward } from '../../src/api/v1alpha1';

export {
  applyPortForward,
  deletePortForward,
  getPortForward,
  patchSpec,
  waitForStatus,
} from '../../tools/testenv/portforward';

export function condition(pf: PortForward, type: string): { status: string; reason: string } | undefined {
  return pf.status?.conditions?.find((c) => c.type === type);
}

/** Resolves true when a TCP connect to the port is refused (nothing listens). */
export function connectRefused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A connection that reads until the peer closes; resolves with what it read. */
export function connectAndRead(
  port: number,
  send?: Buffer,
  host = '127.0.0.1',
): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, host, () => {
      if (send) s.write(send);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => resolve({ data: Buffer.concat(chunks), error: err.message }));
    s.on('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}
