// What a refused or failed HTTP upgrade to pods/portforward means, whichever transport family sent it
// (the v4 WebSocket, SPDY, SPDY over a WebSocket): the API server's message and the TunnelErrorKind a
// person can act on.
import type { IncomingMessage } from 'node:http';
import type { TunnelErrorKind } from './errors';

/** The body of a refused upgrade (at most 64 KiB kept), once, however the response ends. */
export function readBody(res: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done(Buffer.concat(chunks).toString('utf8'));
  };
  res.on('data', (c: Buffer) => {
    if (size < 64 * 1024) chunks.push(c);
    size += c.length;
  });
  res.once('end', finish);
  res.once('error', finish);
  res.once('aborted', finish);
  res.once('close', finish);
}

/** The `message` of a metav1.Status body, else the body's first line. */
export function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // not JSON: fall through
  }
  return body.split('\n')[0].trim().slice(0, 500);
}

export function kindOfStatus(status: number): TunnelErrorKind {
  if (status === 401 || status === 403) return 'forbidden';
  if (status === 404) return 'notFound';
  if (status === 408 || status === 504) return 'timeout';
  if (status === 101 || status === 200 || status === 426) return 'protocol';
  return 'network';
}

export function kindOfError(err: NodeJS.ErrnoException): TunnelErrorKind {
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ETIMEDOUT' || /timed out/i.test(err.message)) return 'timeout';
  if (/subprotocol|Sec-WebSocket|Invalid WebSocket frame|Max payload/i.test(err.message)) return 'protocol';
  return 'network';
}
