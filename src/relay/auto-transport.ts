// Transports in order, chosen once per API server and remembered (ADR 6): direct SPDY first, SPDY
// over a WebSocket tunnel for API servers behind L7 proxies that refuse SPDY, the per-connection v4
// WebSocket last. A candidate is given up only on a sign that the path does not carry it (a refused
// or garbled upgrade); RBAC, a missing pod or a node-side error are the answer, whatever the transport.
import type * as net from 'node:net';
import { PortForwardError } from './errors';
import type { RelayLogger } from './logger';
import type { RelayTunnel, RetainedPod, StreamTarget, Transport, TunnelHooks } from './transport';
import type { TransportName } from './types';

/** HTTP statuses with which a proxy or an older API server refuses an upgrade it does not carry. */
const UNSUPPORTED_STATUS = new Set([400, 405, 426, 501, 502]);

/** Whether `err` says the transport cannot be used on this path (so the next one should be tried). */
export function transportUnsupported(err: unknown): boolean {
  if (!(err instanceof PortForwardError)) return false;
  if (err.status !== undefined) return UNSUPPORTED_STATUS.has(err.status);
  return err.kind === 'protocol';
}

export class AutoTransport implements Transport {
  readonly name = 'auto' as const;
  private chosen: Transport | undefined;
  private next = 0;
  private retained: readonly RetainedPod[] = [];

  constructor(
    private readonly candidates: readonly Transport[],
    private readonly logger: RelayLogger,
  ) {
    if (candidates.length === 0) throw new RangeError('AutoTransport needs at least one transport');
  }

  /** The transport in use: the chosen one, else the one being tried. */
  current(): TransportName {
    return (this.chosen ?? this.candidates[this.next]).name as TransportName;
  }

  async connect(
    socket: net.Socket,
    target: StreamTarget,
    hooks: TunnelHooks,
    signal: AbortSignal,
  ): Promise<RelayTunnel> {
    for (;;) {
      const t = this.chosen ?? this.candidates[this.next];
      try {
        const tunnel = await t.connect(socket, target, hooks, signal);
        this.choose(t);
        return tunnel;
      } catch (err) {
        if (this.chosen || !transportUnsupported(err) || this.next >= this.candidates.length - 1) throw err;
        this.giveUp(t, err as PortForwardError);
      }
    }
  }

  retain(pods: readonly RetainedPod[]): void {
    this.retained = pods;
    (this.chosen ?? this.candidates[this.next]).retain?.(pods);
  }

  warm(pod: RetainedPod): boolean {
    return (this.chosen ?? this.candidates[this.next]).warm?.(pod) ?? false;
  }

  async close(): Promise<void> {
    await Promise.all(this.candidates.map((t) => t.close()));
  }

  private choose(t: Transport): void {
    if (this.chosen) return;
    this.chosen = t;
    this.logger.info(`port-forward transport: ${t.name}`, { transport: t.name });
  }

  private giveUp(t: Transport, err: PortForwardError): void {
    if (this.candidates[this.next] !== t) return; // another connection moved on already
    this.next++;
    const to = this.candidates[this.next];
    this.logger.warn(`the API server path does not carry ${t.name}; trying ${to.name}`, {
      transport: to.name,
      error: err.message,
    });
    t.retain?.([]);
    to.retain?.(this.retained);
  }
}
