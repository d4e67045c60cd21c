// Writes a PortForward's status subresource. A 409 (conflict) or any other failure is thrown as
// StatusWriteError, so the work queue retries the key; nothing is swallowed.
//
// replace() is a JSON patch whose first operation tests spec.className: the API server applies the
// status only while the PortForward is still of the writer's class, so an operator never writes the
// status of a forward that has just moved to another class (its in-flight write fails instead, and
// its next reconcile sees the move).
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
  'remote',
  'pod',
  'endpoints',
  'connections',
  'bytesSent',
  'bytesReceived',
  'retargets',
  'refusedClients',
  'transport',
  'lastError',
  'startTime',
  'expiryTime',
  'conditions',
];

/** The field manager of status writes: managedFields tell which operator (class) wrote a status. */
export function statusFieldManager(className = ''): string {
  return className ? `portforward-operator-${className}` : 'portforward-operator';
}

export class StatusWriter {
  private readonly api: k8s.CustomObjectsApi;

  /**
   * `onWritten` hears the resourceVersion of the object a replace() returned when that object is the
   * generation the status reports on (controller/own-writes.ts tells its watch event from others'
   * changes by it; a write that raced a spec change is not reported).
   */
  constructor(
    kc: k8s.KubeConfig,
    private readonly fieldManager?: string,
    private readonly onWritten?: (
      namespace: string,
      name: string,
      resourceVersion: string | undefined,
    ) => void,
  ) {
    this.api = kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /**
   * Makes the status equal `status`, so that a pod that went away leaves no stale status.pod, if the
   * PortForward's spec.className is still `className` ('' for none). Returns false when the
   * PortForward is gone (404): there is nothing left to report on. A PortForward of another class
   * is a StatusWriteError (422).
   */
  async replace(
    namespace: string,
    name: string,
    status: PortForwardStatus,
    className = '',
  ): Promise<boolean> {
    const value: Record<string, unknown> = {};
    for (const f of STATUS_FIELDS) if (status[f] !== undefined) value[f] = status[f];
    const ops = [
      // A test of null passes when the field is absent (json-patch as the API server applies it).
      { op: 'test', path: '/spec/className', value: className || null },
      { op: 'add', path: '/status', value },
    ];
    const written = await this.send(namespace, name, ops, k8s.PatchStrategy.JsonPatch, () =>
      className ? `its spec.className is no longer ${className}` : 'it has a spec.className now',
    );
    if (!written) return false;
    const meta = written.metadata;
    if (meta?.generation !== undefined && meta.generation === status.observedGeneration)
      this.onWritten?.(namespace, name, meta.resourceVersion);
    return true;
  }

  /** Merge-patches the named status fields (null deletes one). */
  async patch(namespace: string, name: string, status: Record<string, unknown>): Promise<boolean> {
    return (await this.send(namespace, name, { status }, k8s.PatchStrategy.MergePatch)) !== undefined;
  }

  private async send(
    namespace: string,
    name: string,
    body: object,
    strategy: k8s.PatchStrategy,
    /** What a failed JSON-patch test means, for the error message. */
    testFailed?: () => string,
  ): Promise<k8s.KubernetesObject | undefined> {
    // The object the write returned; undefined when the PortForward is gone (404).
    try {
      const written = (await this.api.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body,
          fieldManager: this.fieldManager,
        },
        k8s.setHeaderOptions('Content-Type', strategy),
      )) as k8s.KubernetesObject | undefined;
      return written ?? {};
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) return undefined;
      // A failed test is a 422 without field causes; a status the schema refuses names its fields.
      const why =
        code === 422 && testFailed && !/causes/.test(bodyText(err))
          ? `not written: ${testFailed()} (another operator's now)`
          : apiMessage(err);
      throw new StatusWriteError(
        `writing status of ${namespace}/${name} failed (${code ?? 'no response'}): ${why}`,
        code,
        { cause: err },
      );
    }
  }
}

function bodyText(err: unknown): string {
  const body = (err as { body?: unknown })?.body;
  return typeof body === 'string' ? body : JSON.stringify(body ?? '');
}
