// Kubernetes Events (events.k8s.io/v1) about PortForwards, de-duplicated: the same reason and note
// for the same object within a window bumps a counter on the existing Event instead of a new one.
import * as k8s from '@kubernetes/client-node';
import { API_VERSION, KIND, PortForward } from '../api/v1alpha1';
import { Logger } from '../observability/logger';
import { apiMessage } from './client';

const DEDUPE_WINDOW_MS = 10 * 60_000;

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
  private readonly api: k8s.EventsV1Api;
  private readonly recent = new Map<string, { name: string; count: number; at: number }>();

  constructor(
    kc: k8s.KubeConfig,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {
    this.api = kc.makeApiClient(k8s.EventsV1Api);
  }

  /** Records an Event; failures are logged, never thrown (an Event is a courtesy, status is the record). */
  async record(pf: PortForward, type: 'Normal' | 'Warning', reason: string, note: string): Promise<void> {
    const ns = pf.metadata.namespace;
    const dedupeKey = `${pf.metadata.uid}/${type}/${reason}/${note}`;
    const now = new MicroTime();
    const seen = this.recent.get(dedupeKey);
    try {
      if (seen && now.getTime() - seen.at < DEDUPE_WINDOW_MS) {
        seen.count++;
        seen.at = now.getTime();
        await this.api.patchNamespacedEvent(
          seen.name,
          ns,
          { series: { count: seen.count, lastObservedTime: now.toISOString() } },
          undefined,
          undefined,
          undefined,
          undefined,
          undefined,
          { headers: { 'Content-Type': 'application/merge-patch+json' } },
        );
        return;
      }
      const res = await this.api.createNamespacedEvent(ns, {
        metadata: { generateName: `${pf.metadata.name}-`, namespace: ns },
        eventTime: now,
        action: reason,
        reason,
        note: note.slice(0, 1024),
        type,
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.instance,
        regarding: {
          apiVersion: API_VERSION,
          kind: KIND,
          name: pf.metadata.name,
          namespace: ns,
          uid: pf.metadata.uid,
          resourceVersion: pf.metadata.resourceVersion,
        },
      });
      this.recent.set(dedupeKey, { name: res.body.metadata?.name ?? '', count: 1, at: now.getTime() });
      this.prune(now.getTime());
    } catch (err) {
      this.logger.warn('could not record an Event', { reason, error: apiMessage(err) });
    }
  }

  private prune(now: number): void {
    if (this.recent.size < 1000) return;
    for (const [k, v] of this.recent) if (now - v.at > DEDUPE_WINDOW_MS) this.recent.delete(k);
  }
}
