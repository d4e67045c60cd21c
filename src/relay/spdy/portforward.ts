// The portforward.k8s.io protocol on a SPDY session: one forwarded connection is a pair of streams,
// `error` then `data`, with the same `port` and `requestid` headers, as client-go's handleConnection
// and the kubelet's (cri-streaming) httpstream handler pair them.
//
// Guarantees
// - Both SYN_STREAMs, the error stream's half-close and whatever the caller writes on `data` in the
//   same tick leave in one write: no round trip per connection.
// - Text the node writes on the error stream (`error forwarding port 5432 to pod ...: socat not found`,
//   `failed to dial 127.0.0.1:8080 ...`) becomes one PortForwardError of kind `nodeError` with the text
//   as the node wrote it: `error` resolves with it and `data` is destroyed with it (the node resets both
//   streams right after writing it). Only this connection's streams end; the session goes on.
// - `error` resolves with undefined when the error stream ends without text (the forward finished).
// - close() resets both streams (what kubectl does once the remote side is done).
//
// Caveats
// - The kubelet writes its error text in one DATA frame; text arriving after the first frame is added
//   to the promise's error but the data stream was already destroyed with the first part.
// - The node reports a failed dial only on the error stream and only after SYN_REPLY; data written
//   before it is lost with the connection, as with kubectl.
import { PortForwardError } from '../errors';
import type { SpdySession } from './spdy-session';
import type { SpdyStream } from './stream';

export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';

export interface PortForwardConnection {
  requestId: string;
  /** The pod's port as a Duplex: end() half-closes toward the pod, 'end' is the pod side's FIN. */
  data: SpdyStream;
  /** The node's verdict on this connection: a `nodeError`, or undefined once the error stream ended. */
  error: Promise<PortForwardError | undefined>;
  /** Resets both streams. */
  close(): void;
}

/** Opens the error and data streams of one forwarded connection to `port` on `session`. */
export function openPortForward(
  session: SpdySession,
  port: number,
  requestId: string | number,
): PortForwardConnection {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new RangeError(`port ${port} is not in 1-65535`);
  const id = String(requestId);
  let text = '';
  let nodeError: PortForwardError | undefined;
  const resetError = (): Error | undefined => nodeError;

  const errorStream = session.openStream(
    { streamtype: 'error', port: String(port), requestid: id },
    { resetError },
  );
  errorStream.end(); // we never write on it (kubectl: errorStream.Close())
  const data = session.openStream({ streamtype: 'data', port: String(port), requestid: id }, { resetError });

  const error = new Promise<PortForwardError | undefined>((resolve) => {
    errorStream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (!nodeError) {
        nodeError = new PortForwardError('nodeError', text.trim());
        data.destroy(nodeError);
      } else {
        nodeError.message = text.trim();
      }
    });
    errorStream.on('error', () => undefined); // a reset after the text is the node's normal way
    errorStream.once('close', () => resolve(nodeError ?? sessionError(errorStream)));
  });

  return {
    requestId: id,
    data,
    error,
    close: () => {
      data.destroy();
      errorStream.destroy();
    },
  };
}

/** The error a closed error stream carries when no text came (a reset, the session failing). */
function sessionError(stream: SpdyStream): PortForwardError | undefined {
  const err = stream.errored;
  if (!err) return undefined;
  return err instanceof PortForwardError ? err : new PortForwardError('network', err.message, { cause: err });
}
