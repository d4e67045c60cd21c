// The one Lease an election runs on, read and written through coordination.k8s.io/v1. Writes are
// replaces that carry the resourceVersion last read, so of two candidates writing at once exactly one
// wins and the other gets LeaseConflictError (409): it lost the race and must read again.
import * as k8s from '@kubernetes/client-node';
import { LeaderRecord } from './leader-record';
import { apiMessage, statusCode } from './client';

/** The Lease as last read: its record, and what a write needs to be conditional on it. */
export interface LeaseSnapshot {
  record: LeaderRecord;
  resourceVersion: string;
  /** The whole object, so a replace keeps its labels and annotations. */
  lease?: k8s.V1Lease;
}

/** What an election needs of the API; narrow, so unit tests can put an in-memory Lease behind it. */
export interface LeaseStore {
  /** The Lease, or undefined when it does not exist. */
  get(): Promise<LeaseSnapshot | undefined>;
  /** Creates the Lease; throws LeaseConflictError when it exists already. */
  create(record: LeaderRecord): Promise<LeaseSnapshot>;
  /** Replaces the record if the Lease is still as `prev`; throws LeaseConflictError otherwise. */
  update(prev: LeaseSnapshot, record: LeaderRecord): Promise<LeaseSnapshot>;
  /** For messages: namespace/name. */
  readonly description: string;
}

/** Someone else wrote the Lease first (409 on create or on a conditional replace). */
export class LeaseConflictError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LeaseConflictError';
  }
}

export class KubeLeaseStore implements LeaseStore {
  private readonly api: k8s.CoordinationV1Api;
  readonly description: string;

  constructor(
    kc: k8s.KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
    this.description = `${namespace}/${name}`;
  }

  async get(): Promise<LeaseSnapshot | undefined> {
    try {
      const res = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace });
      return snapshot(res);
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw this.wrap('reading', err);
    }
  }

  async create(record: LeaderRecord): Promise<LeaseSnapshot> {
    try {
      const res = await this.api.createNamespacedLease({
        namespace: this.namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace },
          spec: toSpec(record),
        },
      });
      return snapshot(res);
    } catch (err) {
      throw this.wrap('creating', err);
    }
  }

  async update(prev: LeaseSnapshot, record: LeaderRecord): Promise<LeaseSnapshot> {
    const metadata: k8s.V1ObjectMeta = {
      ...(prev.lease?.metadata ?? {}),
      name: this.name,
      namespace: this.namespace,
      resourceVersion: prev.resourceVersion,
    };
    try {
      const res = await this.api.replaceNamespacedLease({
        name: this.name,
        namespace: this.namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata,
          spec: { ...(prev.lease?.spec ?? {}), ...toSpec(record) },
        },
      });
      return snapshot(res);
    } catch (err) {
      throw this.wrap('updating', err);
    }
  }

  private wrap(doing: string, err: unknown): Error {
    const code = statusCode(err);
    const message = `${doing} Lease ${this.description} failed (${code ?? 'no response'}): ${apiMessage(err)}`;
    return code === 409
      ? new LeaseConflictError(message, { cause: err })
      : new Error(message, { cause: err });
  }
}

function snapshot(lease: k8s.V1Lease): LeaseSnapshot {
  const spec = lease.spec ?? {};
  return {
    record: {
      holderIdentity: spec.holderIdentity ?? '',
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      acquireTime: timeText(spec.acquireTime),
      renewTime: timeText(spec.renewTime),
      leaseTransitions: spec.leaseTransitions ?? 0,
    },
    resourceVersion: lease.metadata?.resourceVersion ?? '',
    lease,
  };
}

/** client-node 0.20 leaves MicroTime fields as the API server's strings; a Date is tolerated too. */
function timeText(v: unknown): string | undefined {
  if (v instanceof Date) return v.toISOString();
  return typeof v === 'string' ? v : undefined;
}

function toSpec(record: LeaderRecord): k8s.V1LeaseSpec {
  // V1MicroTime serializes with six fractional digits, the form the API server requires.
  const time = (s: string | undefined): k8s.V1MicroTime | undefined =>
    s === undefined ? undefined : new k8s.V1MicroTime(s);
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    acquireTime: time(record.acquireTime),
    renewTime: time(record.renewTime),
    leaseTransitions: record.leaseTransitions,
  };
}
