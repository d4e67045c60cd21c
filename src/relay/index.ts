// The relay engine's public surface.
export type {
  ClientRule,
  ListenerSpec,
  ListenerState,
  PodRef,
  RelayEngine,
  RelayEvent,
  SessionSpec,
  SessionStats,
  TunnelErrorKind,
} from './types';
export { createRelayEngine } from './engine';
export type { RelayEngineOptions } from './engine';
export { WebSocketDialer, portForwardPath } from './dialer';
export type { Dialer, KubeDialerOptions, TunnelTarget } from './dialer';
export { PortForwardError, RelaySpecError } from './errors';
export { SourceRanges } from './source-ranges';
export { kubeTransport } from './kube-transports';
export type { KubeTransportOptions, TransportChoice } from './kube-transports';
export { TRANSPORT_NAMES } from './transport';
export type { Transport, TransportName } from './transport';
export type { RelayLogger } from './logger';
export { kubeAccess } from './access';
export type { ApiServerAccess } from './access';
export { RelayWorker, startRelayWorker } from './worker/host';
export type { RelayWorkerOptions } from './worker/host';
