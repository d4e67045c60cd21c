// A local stand-in for the API server's pods/portforward subresource, for the relay's tests: it speaks
// v4.channel.k8s.io like the kubelet (port prefix on both channels, error text on channel 1) and leads
// each tunnel to a local TCP server, with backpressure both ways, or to a scripted failure.
import { KubeConfig } from '@kubernetes/client-node';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';

export type FakeRoute =
  /** Relay to a local TCP port; `announce` overrides the ports written on channels 0 and 1. */
  | { kind: 'tcp'; port: number; announce?: [number, number] }
  /** The node fails: prefixes, then this text on the error channel, then close. */
  | { kind: 'nodeError'; message: string }
  /** The API server refuses the upgrade with this HTTP status and metav1.Status message. */
  | { kind: 'status'; code: number; message: string }
  /** Prefixes, then nothing (for ping tests). */
  | { kind: 'idle' };

export interface FakePortForwardServerOptions {
  route(namespace: string, pod: string, port: number): FakeRoute;
  /** The bearer token required; default 'fake-token'. */
  token?: string;
  /** Answer pings (default true). */
  autoPong?: boolean;
}

export interface FakePortForwardServer {
  url: string;
  /** A KubeConfig for this server (http, bearer `token`). */
  kubeConfig(token?: string): KubeConfig;
  /** Upgrades accepted so far. */
  upgrades(): number;
  /** Upgrade requests, those answered with an error status (a 404 for an unknown pod) included. */
  requests(): number;
  /** Tunnels open now. */
  open(): number;
  close(): Promise<void>;
}

const PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/;
const HIGH_WATER = 256 * 1024;

export async function startFakePortForwardServer(
  options: FakePortForwardServerOptions,
): Promise<FakePortForwardServer> {
  const token = options.token ?? 'fake-token';
  let upgrades = 0;
  let requests = 0;
  const open = new Set<WebSocket>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    autoPong: options.autoPong ?? true,
    handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
  });
  const server = http.createServer((_req, res) => respond(res, 400, 'upgrade required'));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://fake');
    const m = PATH.exec(url.pathname);
    const port = Number(url.searchParams.get('ports'));
    if (req.headers.authorization !== `Bearer ${token}`) return reject(socket, 401, 'Unauthorized');
    if (!m || !port) return reject(socket, 400, 'bad port-forward request');
    const route = options.route(decodeURIComponent(m[1]), decodeURIComponent(m[2]), port);
    if (route.kind === 'status') return reject(socket, route.code, route.message);
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgrades++;
      open.add(ws);
      ws.on('close', () => open.delete(ws));
      serveTunnel(ws, port, route);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    kubeConfig: (t = token) => kubeConfigFor(url, t),
    upgrades: () => upgrades,
    requests: () => requests,
    open: () => open.size,
    close: async () => {
      for (const ws of open) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function kubeConfigFor(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node 2.x refuses a plain-HTTP server unless TLS verification is explicitly off.
    clusters: [{ name: 'fake', server, skipTLSVerify: server.startsWith('http:') }],
    users: [{ name: 'fake', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return kc;
}

function frame(channel: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), data]);
}

function portBytes(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port);
  return b;
}

function serveTunnel(ws: WebSocket, port: number, route: FakeRoute): void {
  const [dataPort, errorPort] = route.kind === 'tcp' && route.announce ? route.announce : [port, port];
  ws.send(frame(0, portBytes(dataPort)));
  ws.send(frame(1, portBytes(errorPort)));
  ws.on('error', () => undefined);
  if (route.kind === 'nodeError') {
    ws.send(frame(1, Buffer.from(route.message)));
    ws.close(1000);
    return;
  }
  if (route.kind !== 'tcp') return;

  const pod = net.connect(route.port, '127.0.0.1');
  pod.on('error', (err) => {
    if (ws.readyState === ws.OPEN)
      ws.send(frame(1, Buffer.from(`error forwarding port ${port}: ${err.message}`)));
    ws.close(1000);
  });
  // pod -> client, pausing the pod while the WebSocket's queue is long
  pod.on('data', (chunk: Buffer) => {
    ws.send(frame(0, chunk), () => {
      if (pod.isPaused() && ws.bufferedAmount < HIGH_WATER / 4) pod.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) pod.pause();
  });
  pod.on('close', () => ws.close(1000));
  // client -> pod, pausing the WebSocket while the pod reads slowly
  ws.on('message', (data: Buffer) => {
    if (data[0] !== 0 || data.length < 2) return;
    if (!pod.write(data.subarray(1))) ws.pause();
  });
  pod.on('drain', () => ws.resume());
  ws.on('close', () => pod.destroy());
}

function reject(socket: Duplex, code: number, message: string): void {
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
  socket.end(
    `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function respond(res: http.ServerResponse, code: number, message: string): void {
  res.writeHead(code, { 'content-type': 'text/plain' }).end(message);
}
