// The demo's web server, a small stand-in for kuard (the "Kubernetes Up and Running" demo app): it
// stands behind pod demo/kuard through a kwok PortForward and says which pod served each request, so a
// curl through the operator shows the whole path worked. Plain text for curl, a little HTML for browsers.
import * as http from 'node:http';
import * as net from 'node:net';

export interface DemoServerOptions {
  /** The pod this server plays, as namespace/name. */
  pod: string;
  /** The pod's container port that leads here. */
  podPort: number;
}

export interface DemoServer {
  port: number;
  /** Requests served so far. */
  requests(): number;
  close(): Promise<void>;
}

export function startDemoServer(opts: DemoServerOptions): Promise<DemoServer> {
  const started = Date.now();
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthy' || path === '/ready') return send(res, 200, 'text/plain', 'ok\n');
    if (path !== '/') return send(res, 404, 'text/plain', `not found: ${path} (try /)\n`);
    count++;
    const page = pageText(opts, count, req, Date.now() - started);
    if ((req.headers.accept ?? '').includes('text/html')) {
      return send(res, 200, 'text/html; charset=utf-8', html(page));
    }
    send(res, 200, 'text/plain; charset=utf-8', page);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        requests: () => count,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

function pageText(opts: DemoServerOptions, n: number, req: http.IncomingMessage, uptimeMs: number): string {
  return [
    `Hello from kuard-demo, served by pod ${opts.pod} (container port ${opts.podPort}).`,
    `request #${n}: ${req.method ?? 'GET'} ${req.url ?? '/'} at ${new Date().toISOString()}, server up ${Math.round(uptimeMs / 1000)} s`,
    `path: your client -> the operator's listener -> kube-apiserver pods/portforward -> the node (kwok) -> this pod`,
    '',
  ].join('\n');
}

function html(text: string): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<!doctype html><title>kuard-demo</title><h1>kuard-demo</h1><pre>${escaped}</pre>\n`;
}

function send(res: http.ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
