// The v4.channel.k8s.io framing of a port-forward WebSocket, for one forwarded port (pure: no I/O).
//
// Every message starts with one byte, the channel: 0 carries data both ways, 1 carries errors from the
// node (server -> client only). The server's first message on each channel is the forwarded port as a
// 2-byte little-endian number; it is checked on both channels. Text on the error channel is the node's
// error (for example `error forwarding port 5432 to pod ...: exec: "socat": executable file not found`)
// and is raised as a PortForwardError of kind `nodeError`.
import { PortForwardError } from '../errors';

export const PORT_FORWARD_SUBPROTOCOL = 'v4.channel.k8s.io';
export const DATA_CHANNEL = 0;
export const ERROR_CHANNEL = 1;

/** A client -> pod data message: [0x00, ...data]. */
export function encodeData(data: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(data.length + 1);
  frame[0] = DATA_CHANNEL;
  frame.set(data, 1);
  return frame;
}

/**
 * Decodes the server's messages of one tunnel in order. `decode` returns the pod's data carried by a
 * message (possibly empty) and throws a PortForwardError on a protocol violation (`protocol`) or on
 * error-channel text (`nodeError`).
 */
export class PortForwardDecoder {
  private readonly prefixSeen = [false, false];

  constructor(readonly port: number) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`port ${port} is not in 1-65535`);
    }
  }

  /** True once both channels announced the port. */
  get ready(): boolean {
    return this.prefixSeen[DATA_CHANNEL] && this.prefixSeen[ERROR_CHANNEL];
  }

  decode(message: Buffer): Buffer {
    if (message.length === 0) throw protocolError('an empty message (no channel byte)');
    const channel = message[0];
    if (channel !== DATA_CHANNEL && channel !== ERROR_CHANNEL) {
      throw protocolError(`a message on channel ${channel}; only 0 (data) and 1 (error) exist for one port`);
    }
    let payload = message.subarray(1);
    if (!this.prefixSeen[channel]) {
      if (payload.length < 2) {
        throw protocolError(`a ${payload.length}-byte port prefix on channel ${channel} (2 bytes expected)`);
      }
      const announced = payload.readUInt16LE(0);
      if (announced !== this.port) {
        throw protocolError(`port ${announced} announced on channel ${channel}; ${this.port} was requested`);
      }
      this.prefixSeen[channel] = true;
      payload = payload.subarray(2);
    }
    if (channel === ERROR_CHANNEL) {
      if (payload.length > 0) {
        throw new PortForwardError('nodeError', payload.toString('utf8').trim());
      }
      return EMPTY;
    }
    return payload;
  }
}

const EMPTY = Buffer.alloc(0);

function protocolError(what: string): PortForwardError {
  return new PortForwardError('protocol', `port-forward protocol error: the server sent ${what}`);
}
