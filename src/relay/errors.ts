// Typed errors of the relay. Every failure of a tunnel becomes one PortForwardError whose `kind` says
// what a person can do about it (fix RBAC, wait for the pod, install socat in the image ...).

/** What a person can do about a failed tunnel: fix RBAC, wait for the pod, fix the node's image ... */
export type TunnelErrorKind =
  'refused' | 'timeout' | 'forbidden' | 'notFound' | 'nodeError' | 'protocol' | 'network';

export interface PortForwardErrorOptions {
  cause?: unknown;
  /** The HTTP status of a refused WebSocket upgrade. */
  status?: number;
}

/** A tunnel that could not be opened or that failed while relaying. */
export class PortForwardError extends Error {
  override readonly name = 'PortForwardError';
  readonly status: number | undefined;

  constructor(
    readonly kind: TunnelErrorKind,
    message: string,
    options: PortForwardErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
  }
}

/** Wraps anything thrown into a PortForwardError, keeping an existing one as it is. */
export function asPortForwardError(err: unknown, kind: TunnelErrorKind, context: string): PortForwardError {
  if (err instanceof PortForwardError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new PortForwardError(kind, `${context}: ${detail}`, { cause: err });
}

/** An invalid session spec (bad CIDR, duplicate listener id, port out of range): a caller's bug. */
export class RelaySpecError extends Error {
  override readonly name = 'RelaySpecError';
}

/** A call on a relay that was closed (the operator is shutting down). */
export class RelayClosedError extends Error {
  override readonly name = 'RelayClosedError';
}
