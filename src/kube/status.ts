// Writes a PortForward's status subresource with a JSON merge patch. A 409 (conflict) or any other
// failure is thrown as StatusWriteError, so the work queue retries the key; nothing is swallowed.
import * as k8s from '@kubernetes/client-node';
import { GROUP, PLURAL, PortForwardStatus, VERSION } from '../api/v1alpha1';
import { apiMessage, statusCode } from './client';

export class StatusWriteError extends Error {
  constructor(
    message: string,
    readonly code: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StatusWriteError';
  }
}

const STATUS_FIELDS: (keyof PortForwardStatus)[] = [
  'observedGeneration',
  'phase',
  'message',
  'pod',
  'endpoints',
  'connections',
  'bytesSent',
  'bytesReceived',
  'retargets',
  'transport',
  'lastError',
  'startTime',
  'expiryTime',
  'conditions',
];

export class StatusWriter {
  private readonly api: k8s.CustomObjectsApi;

  constructor(kc: k8s.KubeConfig) {
    this.api = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /**
   * Makes the status equal `status`: a merge patch that also deletes (null) every known field it
   * lacks, so that a pod that went away leaves no stale status.pod. Returns false when the
   * PortForward is gone (404): there is nothing left to report on.
   */
  async replace(namespace: string, name: string, status: PortForwardStatus): Promise<boolean> {
    const patch: Record<string, unknown> = {};
    for (const f of STATUS_FIELDS) patch[f] = status[f] ?? null;
    return this.patch(namespace, name, patch);
  }

  /** Merge-patches the named status fields (null deletes one). */
  async patch(namespace: string, name: string, status: Record<string, unknown>): Promise<boolean> {
    try {
      await this.api.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      return true;
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) return false;
      throw new StatusWriteError(
        `writing status of ${namespace}/${name} failed (${code ?? 'no response'}): ${apiMessage(err)}`,
        code,
        {
          cause: err,
        },
      );
    }
  }
}
