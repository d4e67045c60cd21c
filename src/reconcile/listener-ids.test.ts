import * as assert from 'node:assert/strict';
import { ListenerCandidate, matchListeners, PriorListener } from './listener-ids';

const A = '127.0.0.1';
const entry = (e: Partial<ListenerCandidate> & { port: number | string }): ListenerCandidate => ({
  address: A,
  targetPort: typeof e.port === 'number' ? e.port : 0,
  ...e,
});
const ids = (entries: ListenerCandidate[], prior: PriorListener[]): string[] =>
  matchListeners(entries, prior).map((x) => x.id);

describe('matchListeners', function () {
  it('names new listeners by name, else by position and port', function () {
    assert.deepEqual(ids([entry({ port: 80, name: 'web' }), entry({ port: 81 })], []), ['web', '1/81']);
  });

  it('matches by name first, whatever the port', function () {
    const prior = [{ id: 'x', name: 'web', port: 80, address: A, localPort: 20000, targetPort: 80 }];
    const m = matchListeners([entry({ port: 90, name: 'web' })], prior);
    assert.deepEqual(m, [{ id: 'x', keptPort: 20000 }]);
  });

  it('matches an entry that asks for the local port an earlier listener was bound to', function () {
    const prior = [{ id: 'old', port: 80, address: A, localPort: 20007, targetPort: 80 }];
    assert.deepEqual(ids([entry({ port: 'http', targetPort: 80, requestedPort: 20007 })], prior), ['old']);
    assert.deepEqual(
      matchListeners([entry({ port: 80, requestedPort: 20007 })], prior)[0].keptPort,
      undefined,
    );
  });

  it('matches an allocated entry by container port, preferring the same port as written', function () {
    const prior: PriorListener[] = [
      { id: 'p1', port: 'http', address: A, localPort: 20001, targetPort: 8080 },
      { id: 'p2', port: 8080, address: A, localPort: 20002, targetPort: 8080 },
    ];
    const m = matchListeners([entry({ port: 8080 }), entry({ port: 'http', targetPort: 8080 })], prior);
    assert.deepEqual(m, [
      { id: 'p2', keptPort: 20002 },
      { id: 'p1', keptPort: 20001 },
    ]);
  });

  it('matches by the port as written while the container port is unknown', function () {
    const prior = [{ id: 'p', port: 'grpc', address: A, localPort: 20003 }];
    assert.deepEqual(matchListeners([entry({ port: 'grpc', targetPort: 0 })], prior), [
      { id: 'p', keptPort: 20003 },
    ]);
  });

  it('does not match across addresses, nor a requested port with an allocated one', function () {
    const prior = [{ id: 'p', port: 80, address: A, localPort: 20000, targetPort: 80 }];
    assert.deepEqual(ids([entry({ port: 80, address: '::1' })], prior), ['0/80']);
    const pinned = [
      { id: 'q', port: 80, requestedPort: 18080, address: A, localPort: 18080, targetPort: 80 },
    ];
    assert.deepEqual(ids([entry({ port: 80 })], pinned), ['0/80']);
  });

  it('never gives a new listener an id an earlier one had', function () {
    const prior = [
      { id: '0/80', port: 80, address: A, requestedPort: 1000, localPort: 1000, targetPort: 80 },
    ];
    assert.deepEqual(ids([entry({ port: 80, requestedPort: 2000 })], prior), ['0/80~2']);
  });

  it('matches one to one', function () {
    const prior = [{ id: 'p', port: 80, address: A, localPort: 20000, targetPort: 80 }];
    const m = matchListeners([entry({ port: 80 }), entry({ port: 80 })], prior);
    assert.deepEqual(m[0], { id: 'p', keptPort: 20000 });
    assert.equal(m[1].keptPort, undefined);
    assert.notEqual(m[1].id, 'p');
  });
});
