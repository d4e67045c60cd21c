// One TCP listener of a session. Binding failures (EADDRINUSE, EACCES, EADDRNOTAVAIL ...) are a state
// of the listener, reported to the caller, never thrown.
import * as net from 'node:net';
import type { RelayLogger } from '../logger';
import type { ListenerSpec, ListenerState } from '../types';

export type ConnectionHandler = (socket: net.Socket, listener: RelayListener) => void;

export class RelayListener {
  private server: net.Server | undefined;
  private current: ListenerState;

  constructor(
    /** `remotePort` may change while bound; the binding (address, localPort) may not. */
    public spec: ListenerSpec,
    private readonly onConnection: ConnectionHandler,
    private readonly socketBufferBytes: number,
    private readonly logger: RelayLogger,
  ) {
    this.current = {
      id: spec.id,
      state: 'error',
      ...binding(spec),
      code: 'ENOTBOUND',
      message: 'not bound yet',
    };
  }

  get state(): ListenerState {
    return this.current;
  }

  get bound(): boolean {
    return this.current.state === 'bound';
  }

  /** Whether `spec` keeps this listener's binding (same id, address and requested local port). */
  sameBinding(spec: ListenerSpec): boolean {
    return (
      spec.id === this.spec.id && spec.address === this.spec.address && spec.localPort === this.spec.localPort
    );
  }

  async bind(): Promise<ListenerState> {
    if (this.server) return this.current;
    const server = net.createServer({
      // The client's half-close must not end our side: the pod's reply may still be on its way.
      allowHalfOpen: true,
      // Nothing is read from a client before its tunnel is open.
      pauseOnConnect: true,
      highWaterMark: this.socketBufferBytes,
    });
    server.on('connection', (socket) => {
      // Relayed bytes go out as they come: Nagle would hold a small reply for an ACK that may
      // itself be delayed (a request-response protocol pays up to 40 ms a round trip).
      socket.setNoDelay(true);
      this.onConnection(socket, this);
    });
    this.current = await new Promise<ListenerState>((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        resolve({
          id: this.spec.id,
          state: 'error',
          ...binding(this.spec),
          code: err.code ?? 'UNKNOWN',
          message: `cannot listen on ${hostPort(this.spec.address, this.spec.localPort)}: ${err.message}`,
        });
      };
      server.once('error', onError);
      server.listen({ host: this.spec.address, port: this.spec.localPort }, () => {
        server.off('error', onError);
        const port = (server.address() as net.AddressInfo).port;
        resolve({ id: this.spec.id, state: 'bound', address: this.spec.address, localPort: port });
      });
    });
    if (this.current.state === 'bound') {
      this.server = server;
      // After binding, errors come from accept (EMFILE ...): the server keeps listening.
      server.on('error', (err) =>
        this.logger.warn('listener error', { id: this.spec.id, error: err.message }),
      );
    } else {
      server.close();
    }
    return this.current;
  }

  /** Stops accepting; open connections are the session's to close. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.current = {
      id: this.spec.id,
      state: 'error',
      ...binding(this.spec),
      code: 'ECLOSED',
      message: 'closed',
    };
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function binding(spec: ListenerSpec): { address: string; localPort: number } {
  return { address: spec.address, localPort: spec.localPort };
}

export function hostPort(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}
