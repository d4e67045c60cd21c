// A relay engine wired to a fake port-forward server through the real WebSocket dialer, for tests.
import * as assert from 'node:assert/strict';
import { WebSocketDialer } from '../v4/v4-dialer';
import { createRelayEngine, RelayEngineOptions } from '../engine/engine';
import type { RelayEngine, RelayEvent, SessionSpec } from '../types';
import { FakePortForwardServer, FakeRoute, startFakePortForwardServer } from './fake-portforward-server';

export interface Rig {
  engine: RelayEngine;
  fake: FakePortForwardServer;
  /** Every event the engine emitted. */
  events: RelayEvent[];
  /** What the fake server does for a pod name; unknown pods are 404. */
  routes: Map<string, FakeRoute>;
  /** Ensures one listener `id` on 127.0.0.1 (kernel-chosen port) to `pod`; returns the bound port. */
  listen(
    key: string,
    pod: string | undefined,
    remotePort: number,
    extra?: Partial<SessionSpec>,
  ): Promise<number>;
  close(): Promise<void>;
}

export async function startRig(
  options: Partial<RelayEngineOptions> & { autoPong?: boolean } = {},
): Promise<Rig> {
  const routes = new Map<string, FakeRoute>();
  const fake = await startFakePortForwardServer({
    autoPong: options.autoPong,
    route: (_ns, pod) => routes.get(pod) ?? { kind: 'status', code: 404, message: `pods "${pod}" not found` },
  });
  const engine = createRelayEngine({ dialer: new WebSocketDialer(fake.kubeConfig()), ...options });
  const events: RelayEvent[] = [];
  engine.onEvent((e) => events.push(e));
  return {
    engine,
    fake,
    events,
    routes,
    async listen(key, pod, remotePort, extra = {}) {
      const [state] = await engine.ensure(key, {
        listeners: [{ id: 'main', address: '127.0.0.1', localPort: 0, remotePort }],
        targets: pod === undefined ? [] : [{ namespace: 'test', name: pod }],
        ...extra,
      });
      assert.equal(state.state, 'bound', JSON.stringify(state));
      assert.ok(state.localPort > 0);
      return state.localPort;
    },
    async close() {
      await engine.close();
      await fake.close();
    },
  };
}
