// The sessions the SPDY transport holds for one pod, and small helpers of spdy-transport.ts.
import { PortForwardError } from '../errors';
import type { StreamTarget } from '../transport';
import type { PodRef } from '../types';
import type { SpdySession } from './spdy-session';
import type { WarmState } from './warm-pods';

/** One session of a pod's pool: dialing (ready) or open (session). */
export interface Pooled {
  session: SpdySession | undefined;
  /** Set while dialing. */
  ready: Promise<SpdySession> | undefined;
  streams: number;
  unresponsive: boolean;
  /** The server keeps sending for a stream we reset (kwok does, until the pod stops): retire it. */
  orphaned: boolean;
  idleSince: number;
  nextRequestId: number;
}

export class PodSessions implements WarmState {
  readonly sessions = new Set<Pooled>();
  retained = false;
  cold = false;
  lastUsed = Date.now();
  connections = 0;
  failures = 0;
  redialTimer: NodeJS.Timeout | undefined;
  constructor(
    readonly pod: PodRef,
    readonly key: string,
  ) {}
}

export function podKey(p: PodRef & { uid?: string }): string {
  return `${p.namespace}/${p.name}${p.uid ? `/${p.uid}` : ''}`;
}

/** `ready`, or a PortForwardError once the client went away. */
export function abortable(
  ready: Promise<SpdySession>,
  signal: AbortSignal,
  t: StreamTarget,
): Promise<SpdySession> {
  if (signal.aborted) return Promise.reject(gone(t));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(gone(t));
    signal.addEventListener('abort', onAbort, { once: true });
    ready.then(
      (s) => {
        signal.removeEventListener('abort', onAbort);
        resolve(s);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function gone(t: StreamTarget): PortForwardError {
  return new PortForwardError('network', `port-forward to pod ${t.namespace}/${t.pod}: the client went away`);
}
