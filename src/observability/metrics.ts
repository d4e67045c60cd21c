// Prometheus metrics (prom-client), named portforward_*, plus the default process metrics. One
// registry per operator, so tests can run several operators in one process. Per-session counters
// are read from the relay at scrape time; they restart from zero when a session is re-created
// (Prometheus counters allow resets).
import * as client from 'prom-client';
import type { SessionStats, TunnelErrorKind } from '../relay';
import { parseKey } from '../api/key';

export interface SessionSource {
  keys(): string[];
  stats(key: string): SessionStats | undefined;
}

const PF_LABELS = ['namespace', 'name'] as const;

export class Metrics {
  readonly registry = new client.Registry();
  private source: SessionSource | undefined;

  readonly reconcileTotal = new client.Counter({
    name: 'portforward_reconcile_total',
    help: 'Reconciles of PortForwards by result (success, error).',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly reconcileSeconds = new client.Histogram({
    name: 'portforward_reconcile_duration_seconds',
    help: 'Time one reconcile of a PortForward took.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly queueDepth = new client.Gauge({
    name: 'portforward_workqueue_depth',
    help: 'PortForward keys waiting to be reconciled.',
    registers: [this.registry],
  });
  readonly queueWaitSeconds = new client.Histogram({
    name: 'portforward_workqueue_queue_duration_seconds',
    help: 'Time a PortForward key waited in the work queue before a worker took it, by priority (normal: a change; low: a new serving term, counters).',
    labelNames: ['priority'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly connectSeconds = new client.Histogram({
    name: 'portforward_connect_duration_seconds',
    help: 'Time from accepting a client to relaying it to the pod, by transport (spdy, spdy-websocket, websocket).',
    labelNames: [...PF_LABELS, 'transport'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly tunnelErrors = new client.Counter({
    name: 'portforward_tunnel_errors_total',
    help: 'Connections that failed, by class: refused, timeout, forbidden, notFound, nodeError, protocol, network.',
    labelNames: [...PF_LABELS, 'class'],
    registers: [this.registry],
  });
  readonly clientsRefused = new client.Counter({
    name: 'portforward_clients_refused_total',
    help: 'Clients refused at accept, by reason: notAPod, podNotAllowed, outsideSourceRanges.',
    labelNames: [...PF_LABELS, 'reason'],
    registers: [this.registry],
  });
  readonly retargets = new client.Counter({
    name: 'portforward_retargets_total',
    help: 'Times new connections of a PortForward moved to another pod.',
    labelNames: PF_LABELS,
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    const source = (): SessionSource | undefined => this.source;
    const perSession = (fn: (labels: { namespace: string; name: string }, s: SessionStats) => void): void => {
      const src = source();
      for (const key of src?.keys() ?? []) {
        const s = src?.stats(key);
        if (s) fn(parseKey(key), s);
      }
    };
    new client.Gauge({
      name: 'portforward_connections_active',
      help: 'Client connections open right now, per PortForward.',
      labelNames: PF_LABELS,
      registers: [this.registry],
      collect() {
        this.reset();
        perSession((l, s) => this.set(l, s.active));
      },
    });
    new client.Counter({
      name: 'portforward_connections_total',
      help: 'Client connections per PortForward by result: ok, failed, refused (not admitted by allowedSourceRanges or allowedClients).',
      labelNames: [...PF_LABELS, 'result'],
      registers: [this.registry],
      collect() {
        this.reset();
        perSession((l, s) => {
          this.inc({ ...l, result: 'ok' }, Math.max(0, s.total - s.failed - s.active));
          this.inc({ ...l, result: 'failed' }, s.failed);
          this.inc({ ...l, result: 'refused' }, s.refused);
        });
      },
    });
    new client.Gauge({
      name: 'portforward_session_warm',
      help: "Whether a pre-dialed session to the PortForward's target is open (1: a new connection starts without a dial, 0: it dials first); absent with the websocket transport.",
      labelNames: PF_LABELS,
      registers: [this.registry],
      collect() {
        this.reset();
        perSession((l, s) => {
          if (s.warm !== undefined) this.set(l, s.warm ? 1 : 0);
        });
      },
    });
    new client.Gauge({
      name: 'portforward_buffered_bytes',
      help: 'Bytes the relay holds in memory for a PortForward right now, both directions (bounded by backpressure).',
      labelNames: PF_LABELS,
      registers: [this.registry],
      collect() {
        this.reset();
        perSession((l, s) => this.set(l, s.bufferedBytes ?? 0));
      },
    });
    new client.Counter({
      name: 'portforward_bytes_total',
      help: 'Bytes relayed per PortForward by direction: sent (client to pod), received (pod to client).',
      labelNames: [...PF_LABELS, 'direction'],
      registers: [this.registry],
      collect() {
        this.reset();
        perSession((l, s) => {
          this.inc({ ...l, direction: 'sent' }, s.bytesSent);
          this.inc({ ...l, direction: 'received' }, s.bytesReceived);
        });
      },
    });
  }

  /** Where the per-session metrics come from (the relay engine). */
  observeSessions(source: SessionSource): void {
    this.source = source;
  }

  tunnelError(key: string, kind: TunnelErrorKind): void {
    this.tunnelErrors.inc({ ...split(key), class: kind });
  }

  clientRefused(key: string, reason: string): void {
    this.clientsRefused.inc({ ...split(key), reason });
  }

  retarget(key: string): void {
    this.retargets.inc(split(key));
  }

  connected(key: string, ms: number, transport: string): void {
    this.connectSeconds.observe({ ...split(key), transport }, ms / 1000);
  }
}

function split(key: string): { namespace: string; name: string } {
  return parseKey(key);
}
