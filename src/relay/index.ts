// The relay's only door: everything outside src/relay/ imports from here (test/unit/architecture.test.ts
// checks it). Behind it: engine/ (listeners, client sessions, who may connect), transport.ts and one
// folder per transport family (spdy/: SPDY/3.1 sessions, direct or over a WebSocket; v4/: one
// v4.channel.k8s.io WebSocket per connection), and worker/, which runs it all on a worker thread.
export type {
  ClientRule,
  ClusterRef,
  ListenerSpec,
  ListenerState,
  LoadBalance,
  PodRef,
  PodTarget,
  RelayEngine,
  RelayEvent,
  SessionSpec,
  SessionStats,
  TransportName,
} from './types';
export { TRANSPORT_NAMES } from './types';
export { PortForwardError, RelayClosedError, RelaySpecError } from './errors';
export type { TunnelErrorKind } from './errors';
export { createRelayEngine } from './engine/engine';
export type { RelayEngineOptions } from './engine/engine';
export { SourceRanges } from './engine/source-ranges';
export type { Transport } from './transport';
export { kubeTransport } from './kube-transports';
export type { KubeTransportOptions, TransportChoice } from './kube-transports';
export { WebSocketDialer, portForwardPath } from './v4/v4-dialer';
export type { Dialer, KubeDialerOptions, TunnelTarget } from './v4/v4-dialer';
export type { RelayLogger } from './logger';
export { silentLogger } from './logger';
export { kubeAccess } from './access';
export type { ApiServerAccess } from './access';
export { RelayWorker, startRelayWorker } from './worker/host';
export type { RelayWorkerOptions } from './worker/host';
