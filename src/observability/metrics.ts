// Prometheus metrics (prom-client), named portforward_*, plus the default process metrics. One
// registry per operator, so tests can run several operators in one process.
import * as client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();
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

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
  }
}
