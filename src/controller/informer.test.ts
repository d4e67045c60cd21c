// ResilientInformer against a list that fails, then works, and a local HTTP server standing in for the
// watch: synced only once a list succeeded, a recovery reported once, retries with growing delays.
import * as k8s from '@kubernetes/client-node';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as winston from 'winston';
import { waitFor } from '../../test/support/wait';
import { kubeConfigFor } from '../relay/testing/fake-portforward-server';
import { ResilientInformer } from './informer';

describe('ResilientInformer', function () {
  let server: http.Server;
  let kc: k8s.KubeConfig;
  const open = new Set<http.ServerResponse>();

  before(async function () {
    // A watch that stays open and says nothing.
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      open.add(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    kc = kubeConfigFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'token');
  });

  after(function () {
    for (const res of open) res.destroy();
    server.close();
  });

  it('is synced only after a list succeeded, and reports the recovery once (issue 11)', async function () {
    const logged: { level: string; message: string; retryInMs?: number; hint?: string }[] = [];
    const logger = winston.createLogger({
      level: 'debug',
      transports: [new winston.transports.Console({ silent: true })],
    });
    logger.on('data', (info: { level: string; message: string; retryInMs?: number; hint?: string }) =>
      logged.push(info),
    );
    let calls = 0;
    const down = 3;
    const inf = new ResilientInformer<k8s.V1Pod>({
      kind: 'Pod',
      path: '/api/v1/namespaces/ns/pods',
      list: () => {
        calls++;
        if (calls <= down) {
          return Promise.reject(
            Object.assign(new Error('fetch failed'), { cause: new Error('connect ECONNREFUSED') }),
          );
        }
        return Promise.resolve({
          apiVersion: 'v1',
          kind: 'PodList',
          items: [],
          metadata: { resourceVersion: '1' },
        });
      },
      kubeConfig: kc,
      logger,
      restartDelayMs: 5,
    });
    let recovered = 0;
    inf.onRecover(() => recovered++);
    after(() => inf.stop());
    await inf.start();
    assert.equal(inf.hasSynced(), false, 'a failed list is not a sync');
    await waitFor('the list to succeed', () => inf.hasSynced(), 5000, 5);
    assert.equal(calls, down + 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(recovered, 1, 'one recovery, after the list that worked');
    assert.equal(logged.filter((l) => /resumed/.test(l.message)).length, 1);
    const retries = logged.filter((l) => /watch of Pod/.test(l.message) && l.retryInMs !== undefined);
    assert.deepEqual(
      retries.map((l) => l.retryInMs),
      [5, 10, 20],
      'growing delays',
    );
    assert.match(retries[0].hint ?? '', /cannot reach the API server/);
  });
});
