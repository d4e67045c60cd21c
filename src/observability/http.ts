// The operator's small HTTP endpoints: /healthz and /readyz on --health-probe-bind-address, /metrics
// on --metrics-bind-address.
import * as http from 'node:http';
import * as net from 'node:net';
import type { BindAddress } from '../config/flags';
import type { Metrics } from './metrics';

export interface Probes {
  /** The process works (its event loop answers): liveness. */
  healthy(): boolean;
  /** This replica serves forwards (caches synced; leader when electing): readiness. */
  ready(): { ok: boolean; reason: string };
}

export function serveProbes(bind: BindAddress, probes: Probes): Promise<http.Server> {
  return listen(bind, (req, res) => {
    if (req.url === '/healthz')
      return reply(res, probes.healthy() ? 200 : 500, probes.healthy() ? 'ok' : 'unhealthy');
    if (req.url === '/readyz') {
      const r = probes.ready();
      return reply(res, r.ok ? 200 : 503, r.ok ? 'ok' : `not ready: ${r.reason}`);
    }
    reply(res, 404, 'not found');
  });
}

export function serveMetrics(bind: BindAddress, metrics: Metrics): Promise<http.Server> {
  return listen(bind, (req, res) => {
    if (req.url !== '/metrics') return reply(res, 404, 'not found');
    metrics.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      },
      (err: Error) => reply(res, 500, err.message),
    );
  });
}

function reply(res: http.ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function listen(bind: BindAddress, handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(`cannot listen on ${bind.host}:${bind.port}: ${err.code ?? err.message}`, { cause: err }),
      ),
    );
    server.listen(bind.port, bind.host, () => resolve(server));
  });
}

export function boundPort(server: http.Server): number {
  return (server.address() as net.AddressInfo).port;
}
