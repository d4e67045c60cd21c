// A relay engine for reconciler tests: records the spec of each session and binds every listener,
// except on ports "another program" holds (`taken`), which fail with EADDRINUSE as the real engine's
// do. Counters are whatever a test puts in `statsByKey`.
import type { ListenerState, RelayEngine, SessionSpec, SessionStats } from '../../relay';

export class FakeRelay implements RelayEngine {
  readonly specs = new Map<string, SessionSpec>();
  readonly statsByKey = new Map<string, SessionStats>();

  /** `taken`: ports another program holds. */
  constructor(readonly taken = new Set<number>()) {}

  ensure(key: string, spec: SessionSpec): Promise<ListenerState[]> {
    this.specs.set(key, spec);
    return Promise.resolve(
      spec.listeners.map((l): ListenerState =>
        this.taken.has(l.localPort)
          ? {
              id: l.id,
              state: 'error',
              address: l.address,
              localPort: l.localPort,
              code: 'EADDRINUSE',
              message: 'in use',
            }
          : { id: l.id, state: 'bound', address: l.address, localPort: l.localPort },
      ),
    );
  }

  /** The local ports every session has bound now. */
  boundPorts(): number[] {
    return [...this.specs.values()].flatMap((s) =>
      s.listeners.map((l) => l.localPort).filter((p) => !this.taken.has(p)),
    );
  }

  stop(key: string): Promise<void> {
    this.specs.delete(key);
    return Promise.resolve();
  }
  stats(key: string): SessionStats | undefined {
    return this.statsByKey.get(key);
  }
  keys(): string[] {
    return [...this.specs.keys()];
  }
  onEvent(): void {}
  stopAccepting(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
