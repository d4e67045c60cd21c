import * as assert from 'node:assert/strict';
import { durationMs } from '../api/duration';
import { ConfigError, parseConfig, usage } from './flags';

describe('operator flags', function () {
  it('has the documented defaults outside a cluster', function () {
    const cfg = parseConfig([], {});
    assert.equal(cfg.listenAddress, '127.0.0.1');
    assert.equal(cfg.advertiseAddress, '127.0.0.1');
    assert.deepEqual(cfg.portRange, { min: 20000, max: 29999 });
    assert.deepEqual(cfg.metricsBindAddress, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(cfg.healthProbeBindAddress, { host: '0.0.0.0', port: 8081 });
    assert.deepEqual(cfg.namespaces, []);
    assert.equal(cfg.leaderElect, false);
    assert.equal(cfg.statusIntervalMs, 5000);
    assert.equal(cfg.counterWritesPerSecond, 50);
    assert.equal(cfg.className, '', 'serves PortForwards without spec.className');
  });

  it('takes --class NAME (or PFO_CLASS): the spec.className it serves', function () {
    assert.equal(parseConfig(['--class', 'alice'], {}).className, 'alice');
    assert.equal(parseConfig([], { PFO_CLASS: 'in-cluster' }).className, 'in-cluster');
    assert.equal(parseConfig(['--class=bob'], { PFO_CLASS: 'alice' }).className, 'bob');
  });

  it('listens on 0.0.0.0 inside a cluster and advertises loopback unless told', function () {
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    process.env.KUBERNETES_SERVICE_HOST = '10.0.0.1';
    try {
      const cfg = parseConfig([], {});
      assert.equal(cfg.listenAddress, '0.0.0.0');
      assert.equal(parseConfig(['--advertise-address=10.1.2.3'], {}).advertiseAddress, '10.1.2.3');
    } finally {
      if (saved === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      else process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });

  it('reads every flag from the environment, and a flag wins over it', function () {
    const env = {
      PFO_PORT_RANGE: '30000-30010',
      PFO_NAMESPACE: 'a,b',
      PFO_LEADER_ELECT: 'true',
      KUBECONFIG: '/k',
    };
    const cfg = parseConfig([], env);
    assert.deepEqual(cfg.portRange, { min: 30000, max: 30010 });
    assert.deepEqual(cfg.namespaces, ['a', 'b']);
    assert.equal(cfg.leaderElect, true);
    assert.equal(cfg.kubeconfig, '/k');
    assert.deepEqual(parseConfig(['--port-range', '40000-40001'], env).portRange, { min: 40000, max: 40001 });
  });

  it('takes --namespace repeatedly and 0 to disable an endpoint', function () {
    const cfg = parseConfig(
      [
        '--namespace=a',
        '--namespace',
        'b',
        '--metrics-bind-address=0',
        '--health-probe-bind-address=127.0.0.1:0',
      ],
      {},
    );
    assert.deepEqual(cfg.namespaces, ['a', 'b']);
    assert.equal(cfg.metricsBindAddress, undefined);
    assert.deepEqual(cfg.healthProbeBindAddress, { host: '127.0.0.1', port: 0 });
  });

  const bad: [string[], RegExp][] = [
    [['--port-range=3000'], /--port-range=3000 is not a range MIN-MAX/],
    [['--port-range=30-20'], /1 <= MIN <= MAX <= 65535/],
    [['--port-range=1-70000'], /--port-range/],
    [['--listen-address=localhost'], /--listen-address=localhost is not an IP address/],
    [['--metrics-bind-address=8080'], /is not HOST:PORT, :PORT or 0/],
    [['--log-level=verbose'], /--log-level=verbose is not one of error, warn, info, debug/],
    [['--log-format=xml'], /not one of json, text/],
    [['--leader-elect=yes'], /--leader-elect=yes is not true or false/],
    [['--namespace=Bad_NS'], /is not a namespace name/],
    [['--workers=0'], /whole number from 1 to 64/],
    [['--class=Alice'], /--class=Alice is not a class name: a DNS label/],
    [['--class=-x'], /is not a class name/],
    [[`--class=${'a'.repeat(64)}`], /is not a class name/],
    [['--status-interval=5'], /is not a duration/],
    [['--counter-writes-per-second=-1'], /--counter-writes-per-second/],
    [['--counter-writes-per-second=fast'], /--counter-writes-per-second/],
    [['--bogus'], /unknown flag --bogus/],
    [['--port-range'], /flag --port-range needs a value/],
    [['stray'], /unexpected argument "stray"/],
    [['--log-level=info', '--log-level=debug'], /given twice/],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')} with one clear line`, function () {
      assert.throws(
        () => parseConfig(argv, {}),
        (err: Error) =>
          err instanceof ConfigError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  it('refuses a bad value from the environment naming the flag', function () {
    assert.throws(() => parseConfig([], { PFO_PORT_RANGE: 'x' }), /--port-range=x/);
  });

  it('parses Go-style durations', function () {
    assert.equal(durationMs('90s'), 90_000);
    assert.equal(durationMs('1h30m'), 5_400_000);
    assert.equal(durationMs('500ms'), 500);
    assert.equal(durationMs('1.5h'), 5_400_000);
    assert.equal(durationMs('5'), undefined);
    assert.equal(durationMs('-1s'), undefined);
  });

  it('lists every flag with its environment variable in --help', function () {
    const text = usage();
    for (const f of [
      '--kubeconfig',
      '--namespace',
      '--listen-address',
      '--advertise-address',
      '--port-range',
      '--metrics-bind-address',
      '--health-probe-bind-address',
      '--leader-elect',
      '--log-level',
      '--log-format',
    ]) {
      assert.ok(text.includes(f), f);
    }
    assert.ok(text.includes('$PFO_PORT_RANGE'));
    assert.ok(text.includes('"20000-29999"'));
  });
});
