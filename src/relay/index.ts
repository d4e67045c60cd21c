// The relay engine's public surface.
export type {
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
export { parseCidr, matchesAny } from './cidr';
export type { Cidr } from './cidr';
export type { RelayLogger } from './logger';
