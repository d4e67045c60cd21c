// The PortForward API, portforward.dev/v1alpha1 (contract: extend it, never rename it). The CRD in
// crds/portforward.yaml is the schema of record; these types mirror it for the operator's code.

export const GROUP = 'portforward.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'PortForward';
export const PLURAL = 'portforwards';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Exactly one field is set (enforced at admission): the target kinds (src/targets/kinds.ts). */
export interface Target {
  pod?: string;
  service?: string;
  deployment?: string;
  statefulSet?: string;
  selector?: LabelSelector;
}

export interface PortSpec {
  /** A port number, or a name: a service port name (service targets) or a container port name. */
  port: number | string;
  name?: string;
  localPort?: number;
  /** Only TCP: port-forward carries TCP alone; the field exists so that UDP is refused at admission. */
  protocol?: 'TCP';
}

/**
 * A peer that may connect, read as NetworkPolicy reads one: podSelector alone, pods of the
 * PortForward's namespace; namespaceSelector alone, all pods of those namespaces; both, the matching
 * pods of the matching namespaces. An empty selector ({}) matches everything. At least one is set.
 */
export interface ClientPeer {
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

/**
 * The target and where to look for it: in this cluster, the PortForward's own namespace; with
 * kubeConfig, `namespace` of that cluster (default the PortForward's namespace's name).
 */
export type TargetSpec = Target & { namespace?: string };

/** A kubeconfig in a Secret of the PortForward's namespace (Flux's shape, Cluster API's key). */
export interface KubeConfigRef {
  secretRef: { name: string; key?: string };
}

export interface PortForwardSpec {
  /** The target is in the cluster this kubeconfig reaches (its current context). */
  kubeConfig?: KubeConfigRef;
  target: TargetSpec;
  ports: PortSpec[];
  listenAddress?: string;
  allowedSourceRanges?: string[];
  /** Pods that may connect to a listener that is not loopback-only (default: the PortForward's namespace). */
  allowedClients?: ClientPeer[];
  /** The operator that serves it: the one started with --class NAME; unset, the one without --class. */
  className?: string;
  /** A Go-style duration: 90s, 15m, 1h30m. */
  ttl?: string;
  suspend?: boolean;
  /** first (default): every new connection goes to one pod; spread: round-robin over all ready pods. */
  loadBalance?: 'first' | 'spread';
}

export type Phase = 'Pending' | 'Ready' | 'Degraded' | 'Suspended' | 'Expired' | 'Failed';

export interface Endpoint {
  name?: string;
  /** The spec's port as given (number or name). */
  port: number | string;
  /** The pod's container port the forward reaches. */
  targetPort?: number;
  address: string;
  localPort: number;
  url: string;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** Why a client was refused at accept. */
export type RefusalReason = 'notAPod' | 'podNotAllowed' | 'outsideSourceRanges';

/** Clients refused at accept, by reason, and the latest one. */
export type RefusedClients = Partial<Record<RefusalReason, number>> & {
  last?: { address: string; reason: RefusalReason; pod?: string; time: string };
};

export interface PortForwardStatus {
  observedGeneration?: number;
  phase?: Phase;
  message?: string;
  /** Set for a target in another cluster: its API server (never a credential) and namespace. */
  remote?: { server: string; namespace: string };
  pod?: { name: string; uid?: string };
  endpoints?: Endpoint[];
  connections?: { active: number; total: number; failed: number; refused?: number };
  bytesSent?: number;
  bytesReceived?: number;
  retargets?: number;
  refusedClients?: RefusedClients;
  /** How the latest connection reached the pod: spdy, spdy-websocket or websocket. */
  transport?: string;
  lastError?: { message: string; time: string };
  startTime?: string;
  expiryTime?: string;
  conditions?: Condition[];
}

export interface PortForward {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    /** Strings in watch events, Dates after client-node's deserializer: read with toISO(). */
    creationTimestamp?: string | Date;
    deletionTimestamp?: string | Date;
  };
  spec: PortForwardSpec;
  status?: PortForwardStatus;
}
