// Kubernetes Events (events.k8s.io/v1) about PortForwards, correlated and rate-limited: an EventSink
// (event-sink.ts, on event-correlator.ts, after client-go's EventCorrelator) decides what reaches the
// API server, so a storm of failures costs a handful of writes, never one per failure. This file only
// maps its writes onto the events.k8s.io API.
import * as k8s from '@kubernetes/client-node';
import { API_VERSION, KIND, PortForward } from '../api/v1alpha1';
import { Logger } from '../observability/logger';
import { apiMessage, statusCode } from './client';
import type { EventType } from './event-correlator';
import { EventSink, EventSinkOptions, EventSinkStats } from './event-sink';
import { keyOf } from '../api/key';

/**
 * events.k8s.io wants MicroTime, RFC 3339 with exactly six fractional digits; client-node serializes
 * any Date with toISOString(), which gives three, and the API server refuses that.
 */
class MicroTime extends Date {
  override toISOString(): string {
    return super.toISOString().replace(/Z$/, '000Z');
  }
}
const REPORTING_CONTROLLER = 'portforward.dev/operator';

export class EventRecorder {
  private readonly sink: EventSink<PortForward>;

  constructor(
    kc: k8s.KubeConfig,
    instance: string,
    logger: Logger,
    options: Partial<Omit<EventSinkOptions<PortForward>, 'backend'>> = {},
  ) {
    const api = kc.makeApiClient(k8s.EventsV1Api);
    this.sink = new EventSink<PortForward>({
      logger,
      errorMessage: apiMessage,
      isNotFound: (err) => statusCode(err) === 404,
      ...options,
      backend: {
        create: async ({ subject: pf, type, reason, note, eventTime, series }) => {
          const ns = pf.metadata.namespace;
          const res = await api.createNamespacedEvent({
            namespace: ns,
            body: {
              metadata: { generateName: `${pf.metadata.name}-`, namespace: ns },
              eventTime: new MicroTime(eventTime.getTime()),
              action: reason,
              reason,
              note,
              type,
              reportingController: REPORTING_CONTROLLER,
              reportingInstance: instance,
              regarding: {
                apiVersion: API_VERSION,
                kind: KIND,
                name: pf.metadata.name,
                namespace: ns,
                uid: pf.metadata.uid,
              },
              ...(series && {
                series: {
                  count: series.count,
                  lastObservedTime: new MicroTime(series.lastObservedTime.getTime()),
                },
              }),
            },
          });
          return { name: res.metadata?.name ?? '' };
        },
        patchSeries: async (name, s, pf) => {
          await api.patchNamespacedEvent(
            {
              name,
              namespace: pf.metadata.namespace,
              body: {
                series: {
                  count: s.count,
                  lastObservedTime: new MicroTime(s.lastObservedTime.getTime()).toISOString(),
                },
              },
            },
            k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
          );
        },
      },
    });
  }

  /**
   * Counts an occurrence; what it costs on the API server is the sink's to decide. Never throws (an
   * Event is a courtesy, status is the record). `mustDeliver`: retried until it lands (Expired).
   */
  record(
    pf: PortForward,
    type: EventType,
    reason: string,
    note: string,
    opts: { mustDeliver?: boolean } = {},
  ): void {
    const objectKey = pf.metadata.uid ?? keyOf(pf);
    this.sink.record({ objectKey, type, reason, note, ...opts }, pf);
  }

  /** Retries now what waits for the API server (call when it is reachable again). */
  retryNow(): void {
    this.sink.retryNow();
  }

  stats(): EventSinkStats {
    return this.sink.stats();
  }

  /** Writes every pending count, then records nothing more. */
  close(): Promise<void> {
    return this.sink.close();
  }
}
