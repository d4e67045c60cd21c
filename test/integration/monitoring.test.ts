// The monitoring objects (deploy/components/monitoring, and the chart's copies) against real tools and
// the real operator: `promtool check rules` and `promtool test rules` (Debian's promtool, from
// hack/ensure-promtool.sh) on the PrometheusRule's groups; then the operator, run as a process against
// the test control plane with a Ready forward that carried traffic and one failing on the node side, is
// scraped, and every metric and label that an alert or the dashboard names must be one it exports (or
// one Prometheus adds: `up`, and the target labels of a ServiceMonitor scrape).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, load } from 'js-yaml';
import { TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { freePort, httpGet } from '../../tools/testenv/procs';
import { connectAndRead, echoRoundTrip, EchoServer } from '../support/net';
import { OperatorProcess, startOperator } from '../support/operator';
import { applyPortForward, waitForStatus } from '../support/portforward';
import { poll } from '../support/wait';

const MONITORING = path.join(repoRoot, 'deploy', 'components', 'monitoring');
const CHART = path.join(repoRoot, 'charts', 'portforward-operator');

/** Labels Prometheus (with a ServiceMonitor) puts on every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'endpoint', 'container']);
/** Series Prometheus makes itself for each target. */
const PROMETHEUS_SERIES = new Set(['up']);
/** Counters with no sample until their event happens, which this test does not provoke (names checked only). */
const NOT_PROVOKED = new Set(['portforward_retargets_total', 'portforward_clients_refused_total']);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

interface Rule {
  alert: string;
  expr: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
interface RuleSpec {
  groups: { name: string; rules: Rule[] }[];
}

function ruleSpec(): RuleSpec {
  const obj = load(fs.readFileSync(path.join(MONITORING, 'prometheusrule.yaml'), 'utf8')) as {
    spec: RuleSpec;
  };
  return obj.spec;
}

function promtool(): string {
  const out = spawnSync(path.join(repoRoot, 'hack', 'ensure-promtool.sh'), { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.trim();
}

/** What a PromQL expression names: metric selectors with their matcher labels, and grouping labels. */
export function namesIn(expr: string): { metrics: Map<string, Set<string>>; labels: Set<string> } {
  const metrics = new Map<string, Set<string>>();
  const labels = new Set<string>();
  let e = expr.replace(/\[[^\]]*\]/g, ' '); // ranges
  e = e.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_m, list: string) => {
    for (const l of list
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      labels.add(l);
    return ' ';
  });
  // label_values(selector, label): a Grafana template query. A selector with several matchers has commas
  // of its own: one inside braces does not end the selector.
  e = e.replace(/label_values\(((?:[^,{}]|\{[^}]*\})+),\s*(\w+)\s*\)/g, (_m, sel: string, label: string) => {
    labels.add(label);
    return ` ${sel} `;
  });
  e = e.replace(/([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}/g, (_m, name: string | undefined, matchers: string) => {
    const ls = new Set([...matchers.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1]));
    if (name) metrics.set(name, new Set([...(metrics.get(name) ?? []), ...ls]));
    return ' ';
  });
  e = e.replace(/"(?:[^"\\]|\\.)*"/g, ' ');
  for (const m of e.matchAll(/([a-zA-Z_:][\w:]*)\s*(\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase()) || /^\d/.test(m[1])) continue;
    if (!metrics.has(m[1])) metrics.set(m[1], new Set());
  }
  return { metrics, labels };
}

/** The exposition: label names per sample name (histogram parts included), and every family's name. */
function parseExposition(text: string): { samples: Map<string, Set<string>>; families: Set<string> } {
  const samples = new Map<string, Set<string>>();
  const families = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      families.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) families.add(type[1] + s);
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) continue;
    const ls = samples.get(m[1]) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/(\w+)="/g)) ls.add(l[1]);
    samples.set(m[1], ls);
  }
  return { samples, families };
}

describe('monitoring: the alerts with promtool, and against the metrics a running operator exports', function () {
  this.timeout(120_000);

  describe('promtool', function () {
    let dir: string;
    let bin: string;
    before(function () {
      bin = promtool();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pfo-rules-'));
      fs.writeFileSync(path.join(dir, 'rules.yaml'), dump(ruleSpec()));
      fs.copyFileSync(path.join(MONITORING, 'tests', 'alerts.test.yaml'), path.join(dir, 'alerts.test.yaml'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('finds the rules valid (promtool check rules)', function () {
      const out = spawnSync(bin, ['check', 'rules', path.join(dir, 'rules.yaml')], { encoding: 'utf8' });
      console.log(`      ${out.stdout.trim().replace(/\n/g, '\n      ')}`);
      assert.equal(out.status, 0, out.stdout + out.stderr);
      assert.match(out.stdout, new RegExp(`SUCCESS: ${ruleSpec().groups[0].rules.length} rules found`));
    });

    it('fires each alert on the series it is about and stays quiet on the others (promtool test rules)', function () {
      const out = spawnSync(bin, ['test', 'rules', 'alerts.test.yaml'], { cwd: dir, encoding: 'utf8' });
      assert.equal(out.status, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /SUCCESS/);
    });

    it('has a test case that fires every alert', function () {
      const tests = load(fs.readFileSync(path.join(dir, 'alerts.test.yaml'), 'utf8')) as {
        tests: { alert_rule_test: { alertname: string; exp_alerts?: unknown[] }[] }[];
      };
      const fired = new Set(
        tests.tests.flatMap((t) =>
          t.alert_rule_test.filter((c) => c.exp_alerts?.length).map((c) => c.alertname),
        ),
      );
      const alerts = ruleSpec().groups.flatMap((g) => g.rules.map((r) => r.alert));
      assert.deepEqual(
        alerts.filter((a) => !fired.has(a)),
        [],
        'alerts no test case fires',
      );
    });

    it('gives every alert a summary, a description and a runbook_url into a section of docs/troubleshooting.md', function () {
      const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'troubleshooting.md'), 'utf8');
      const anchors = new Set(
        [...doc.matchAll(/^#+ (.*)$/gm)].map((m) =>
          m[1]
            .toLowerCase()
            .replace(/[^\w\- ]/g, '')
            .replace(/ /g, '-'),
        ),
      );
      for (const r of ruleSpec().groups.flatMap((g) => g.rules)) {
        assert.ok(
          r.annotations.summary && r.annotations.description,
          `${r.alert} has a summary and a description`,
        );
        const m = /\/docs\/troubleshooting\.md#([\w-]+)$/.exec(r.annotations.runbook_url ?? '');
        assert.ok(m, `${r.alert}: runbook_url ${r.annotations.runbook_url}`);
        assert.ok(anchors.has(m[1]), `${r.alert}: docs/troubleshooting.md has no section #${m[1]}`);
      }
    });

    it('ships the same rules and dashboard in the chart', function () {
      const chartRules = load(fs.readFileSync(path.join(CHART, 'files', 'prometheusrule-spec.yaml'), 'utf8'));
      assert.deepEqual(chartRules, ruleSpec());
      assert.equal(
        fs.readFileSync(path.join(CHART, 'dashboards', 'portforward-operator.json'), 'utf8'),
        fs.readFileSync(path.join(MONITORING, 'dashboards', 'portforward-operator.json'), 'utf8'),
      );
    });
  });

  describe('the names rules and dashboard use, against a running operator', function () {
    let cluster: TestCluster;
    let ns: string;
    let echo: EchoServer;
    let op: OperatorProcess;
    let metricsPort: number;

    before(async function () {
      cluster = TestCluster.connect();
      ns = await cluster.createNamespace('metrics');
      echo = await cluster.createEchoPod(ns);
      // A pod whose forward fails on the node side, as when socat is missing there.
      await cluster.createPod(ns, 'no-socat', [{ port: 5432, command: ['socat-not-installed', '-'] }]);
      metricsPort = await freePort();
      op = await startOperator({
        kubeconfig: cluster.state.kubeconfig,
        namespaces: [ns],
        extraArgs: [`--metrics-bind-address=127.0.0.1:${metricsPort}`],
      });
      await applyPortForward(cluster, ns, 'web', { target: { pod: 'echo' }, ports: [{ port: 8080 }] });
      await applyPortForward(cluster, ns, 'db', { target: { pod: 'no-socat' }, ports: [{ port: 5432 }] });
      const web = await waitForStatus(
        cluster,
        ns,
        'web',
        'Ready',
        (p) => p.status?.phase === 'Ready',
        20_000,
      );
      const db = await waitForStatus(cluster, ns, 'db', 'Ready', (p) => p.status?.phase === 'Ready', 20_000);
      await echoRoundTrip(web.status!.endpoints![0].localPort, Buffer.from('ping'));
      await cluster.waitNodeForwards();
      await poll('a node-side error counted', 20_000, async () => {
        await connectAndRead(db.status!.endpoints![0].localPort).catch(() => undefined);
        const text = (await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body;
        return /portforward_tunnel_errors_total\{[^}]*class="nodeError"/.test(text);
      });
    });

    after(async function () {
      await op?.stop();
      await echo?.close();
      if (ns) await cluster.deleteNamespace(ns);
    });

    it('names only metrics and labels the operator exports', async function () {
      const { samples, families } = parseExposition(
        (await httpGet(`http://127.0.0.1:${metricsPort}/metrics`)).body,
      );
      const exprs: [where: string, expr: string, extraLabels: string[]][] = [];
      for (const r of ruleSpec().groups.flatMap((g) => g.rules)) {
        const used = Object.values(r.annotations).flatMap((a) =>
          [...a.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]),
        );
        exprs.push([`alert ${r.alert}`, r.expr, used]);
      }
      const dash = JSON.parse(
        fs.readFileSync(path.join(MONITORING, 'dashboards', 'portforward-operator.json'), 'utf8'),
      ) as {
        panels: { title: string; targets?: { expr: string; legendFormat?: string }[] }[];
        templating: { list: { name: string; query?: { query?: string } | string }[] };
      };
      for (const p of dash.panels) {
        for (const t of p.targets ?? []) {
          const legend = [...(t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]);
          exprs.push([`panel "${p.title}"`, t.expr, legend]);
        }
      }
      for (const v of dash.templating.list) {
        const q = typeof v.query === 'string' ? v.query : v.query?.query;
        if (q && q.includes('(')) exprs.push([`variable $${v.name}`, q, []]);
      }
      assert.ok(exprs.length > 25, `${exprs.length} expressions`);

      const wrong: string[] = [];
      const checked = new Set<string>();
      for (const [where, expr, extra] of exprs) {
        const { metrics, labels } = namesIn(expr);
        const available = new Set(TARGET_LABELS);
        for (const [name, matchers] of metrics) {
          checked.add(name);
          if (PROMETHEUS_SERIES.has(name)) continue;
          const exported = samples.get(name);
          if (!exported) {
            if (!families.has(name)) wrong.push(`${where}: metric ${name} is not exported`);
            else if (!NOT_PROVOKED.has(name))
              wrong.push(`${where}: ${name} has no sample to check labels against`);
            continue;
          }
          for (const l of exported) available.add(l);
          for (const l of matchers) {
            if (!exported.has(l) && !TARGET_LABELS.has(l)) wrong.push(`${where}: ${name} has no label ${l}`);
          }
        }
        // Grouping and template labels come from some series of the expression; a metric that was not
        // provoked is taken at its word for the labels the docs give it.
        const unprovoked = [...metrics.keys()].some((n) => NOT_PROVOKED.has(n) && !samples.has(n));
        for (const l of [...labels, ...extra]) {
          if (!available.has(l) && !unprovoked) wrong.push(`${where}: no series of it has a label ${l}`);
        }
      }
      console.log(
        `      checked ${exprs.length} expressions naming ${checked.size} metrics: ${[...checked].sort().join(', ')}`,
      );
      assert.deepEqual(wrong, []);
    });

    it('would catch a misnamed metric or label (the check itself)', function () {
      const { metrics, labels } = namesIn(
        'sum by (namespace, klass) (rate(portforward_tunnel_error_total{class="x"}[5m])) / on (pod) up',
      );
      assert.deepEqual([...metrics.keys()].sort(), ['portforward_tunnel_error_total', 'up']);
      assert.deepEqual([...labels].sort(), ['klass', 'namespace', 'pod']);
      // A Grafana template query whose selector has several matchers: the last argument is a label.
      const tpl = namesIn(
        'label_values(portforward_connections_total{job="x", namespace=~"$namespace"}, nmae)',
      );
      assert.deepEqual([...tpl.metrics.keys()], ['portforward_connections_total']);
      assert.deepEqual([...tpl.metrics.get('portforward_connections_total')!].sort(), ['job', 'namespace']);
      assert.deepEqual([...tpl.labels], ['nmae']);
    });
  });
});
