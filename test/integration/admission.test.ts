// Admission of PortForward objects by the real kube-apiserver of the test control plane: the CRD's
// OpenAPI schema and CEL rules (crds/portforward.yaml) refuse invalid specs with messages that name the
// field and say what is allowed, accept valid ones, and publish descriptions and printer columns.
// Manifests go through the pinned kubectl, as a user's would: its default field validation is Strict,
// which is what refuses unknown fields (without it the API server silently prunes them).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KubectlResult, TestCluster } from '../../tools/testenv/cluster';
import { repoRoot } from '../../tools/testenv/paths';
import { API_VERSION, KIND, PortForward } from '../../src/api/v1alpha1';

const CRD_FILE = path.join(repoRoot, 'crds', 'portforward.yaml');

type Spec = Record<string, unknown>;

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode;
  'x-kubernetes-validations'?: { rule: string; message?: string; messageExpression?: string }[];
}

/** A valid spec to start from; each case changes one thing. */
const BASE: Spec = { target: { pod: 'kuard' }, ports: [{ port: 8080 }] };

function spec(overrides: Spec): Spec {
  return { ...BASE, ...overrides };
}

function manifest(name: string, specOrNothing: Spec | undefined): string {
  return JSON.stringify({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name },
    ...(specOrNothing === undefined ? {} : { spec: specOrNothing }),
  });
}

function ports(n: number, each: (i: number) => Record<string, unknown>): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => each(i));
}

interface Refused {
  title: string;
  /** The spec to send; `null` sends an object without spec. */
  spec: Spec | null;
  /** Each must match the error kubectl prints (field path and what is allowed). */
  errors: RegExp[];
}

const REFUSED: Refused[] = [
  // target
  {
    title: 'a target with no field set',
    spec: spec({ target: {} }),
    errors: [
      /spec\.target/,
      /exactly one of pod, service, deployment, statefulSet or selector/,
      /none is set/,
    ],
  },
  {
    title: 'a target with two fields set',
    spec: spec({ target: { pod: 'kuard', service: 'kuard' } }),
    errors: [/spec\.target/, /exactly one of pod, service/, /it sets pod service/],
  },
  {
    title: 'a target with all five fields set',
    spec: spec({
      target: {
        pod: 'a',
        service: 'b',
        deployment: 'c',
        statefulSet: 'd',
        selector: { matchLabels: { a: 'b' } },
      },
    }),
    errors: [/exactly one of/, /it sets pod service deployment statefulSet selector/],
  },
  {
    title: 'a spec without target',
    spec: { ports: [{ port: 8080 }] },
    errors: [/spec\.target: Required value/],
  },
  {
    title: 'an object without spec',
    spec: null,
    errors: [/spec: Required value/],
  },
  {
    title: 'a pod name with capital letters',
    spec: spec({ target: { pod: 'Kuard' } }),
    errors: [/spec\.target\.pod/, /must be a pod name: lowercase letters, digits, '-' and '\.'/],
  },
  {
    title: 'a pod name with a slash (another namespace is not reachable)',
    spec: spec({ target: { pod: 'other/kuard' } }),
    errors: [/spec\.target\.pod/, /DNS-1123 subdomain/],
  },
  {
    title: 'target.namespace without kubeConfig (in this cluster a PortForward reaches its own namespace)',
    spec: spec({ target: { pod: 'kuard', namespace: 'kube-system' } }),
    errors: [
      /spec\.target\.namespace: Forbidden/,
      /target\.namespace needs kubeConfig; in this cluster a PortForward reaches its own namespace only/,
    ],
  },
  {
    title: 'a kubeConfig without secretRef',
    spec: spec({ kubeConfig: {} }),
    errors: [/spec\.kubeConfig\.secretRef: Required value/],
  },
  {
    title: 'a kubeConfig secretRef with a name that is no Secret name',
    spec: spec({ kubeConfig: { secretRef: { name: 'Staging_Kubeconfig' } } }),
    errors: [/spec\.kubeConfig\.secretRef\.name/, /must be a Secret name/],
  },
  {
    title: 'a kubeConfig secretRef key with a slash',
    spec: spec({ kubeConfig: { secretRef: { name: 'staging', key: 'a/b' } } }),
    errors: [/spec\.kubeConfig\.secretRef\.key/, /must be a Secret key/],
  },
  {
    title: 'a service name starting with a digit',
    spec: spec({ target: { service: '1kuard' } }),
    errors: [/spec\.target\.service/, /must be a Service name/, /starting with a letter/],
  },
  {
    title: 'a service name longer than 63 characters',
    spec: spec({ target: { service: 's'.repeat(64) } }),
    errors: [/spec\.target\.service/, /Too long: may not be (longer|more) than 63/],
  },
  {
    title: 'a deployment name longer than 253 characters',
    spec: spec({ target: { deployment: 'd'.repeat(254) } }),
    errors: [/spec\.target\.deployment/, /Too long: may not be (longer|more) than 253/],
  },
  {
    title: 'a statefulSet name with an underscore',
    spec: spec({ target: { statefulSet: 'db_0' } }),
    errors: [/spec\.target\.statefulSet/, /must be a StatefulSet name/],
  },
  {
    title: 'an empty selector',
    spec: spec({ target: { selector: {} } }),
    errors: [/spec\.target\.selector/, /at least one matchLabels entry or matchExpressions item/],
  },
  {
    title: 'a selector with an unknown operator',
    spec: spec({
      target: { selector: { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['a'] }] } },
    }),
    errors: [
      /spec\.target\.selector\.matchExpressions\[0\]\.operator/,
      /Unsupported value: "Equals"/,
      /"In", "NotIn", "Exists", "DoesNotExist"/,
    ],
  },
  {
    title: 'a selector operator In without values',
    spec: spec({ target: { selector: { matchExpressions: [{ key: 'app', operator: 'In' }] } } }),
    errors: [/spec\.target\.selector\.matchExpressions\[0\]/, /values must be non-empty when operator is In/],
  },
  {
    title: 'a selector operator Exists with values',
    spec: spec({
      target: { selector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['a'] }] } },
    }),
    errors: [
      /spec\.target\.selector\.matchExpressions\[0\]/,
      /empty when operator is Exists or DoesNotExist/,
    ],
  },
  {
    title: 'a matchLabels key with a space',
    spec: spec({ target: { selector: { matchLabels: { 'app name': 'kuard' } } } }),
    errors: [/spec\.target\.selector\.matchLabels/, /keys must be label keys/],
  },
  {
    title: 'a matchLabels value starting with a dash',
    spec: spec({ target: { selector: { matchLabels: { app: '-kuard' } } } }),
    errors: [/spec\.target\.selector\.matchLabels\[app\]/, /label values must be empty or at most 63/],
  },
  // ports
  {
    title: 'a spec without ports',
    spec: { target: { pod: 'kuard' } },
    errors: [/spec\.ports: Required value/],
  },
  {
    title: 'an empty port list',
    spec: spec({ ports: [] }),
    errors: [/spec\.ports/, /should have at least 1 items/],
  },
  {
    title: '33 ports',
    spec: spec({ ports: ports(33, (i) => ({ port: 8000 + i })) }),
    errors: [/spec\.ports/, /Too many: 33: must have at most 32 items/],
  },
  {
    title: 'port 0',
    spec: spec({ ports: [{ port: 0 }] }),
    errors: [/spec\.ports\[0\]\.port/, /port numbers must be from 1 to 65535/],
  },
  {
    title: 'port 65536',
    spec: spec({ ports: [{ port: 8080 }, { port: 65536 }] }),
    errors: [/spec\.ports\[1\]\.port/, /port numbers must be from 1 to 65535/],
  },
  {
    title: 'a negative port',
    spec: spec({ ports: [{ port: -80 }] }),
    errors: [/spec\.ports\[0\]\.port/, /from 1 to 65535/],
  },
  {
    title: 'a fractional port',
    spec: spec({ ports: [{ port: 80.5 }] }),
    errors: [/spec\.ports\[0\]\.port/, /integer or string|must be of type/],
  },
  {
    title: 'a port name with capital letters',
    spec: spec({ ports: [{ port: 'HTTP' }] }),
    errors: [/spec\.ports\[0\]\.port/, /IANA service name/, /lowercase letters, digits and '-'/],
  },
  {
    title: 'a port name longer than 15 characters',
    spec: spec({ ports: [{ port: 'abcdefghijklmnop' }] }),
    errors: [/spec\.ports\[0\]\.port/, /Too long: may not be (longer|more) than 15/],
  },
  {
    title: 'a quoted port number',
    spec: spec({ ports: [{ port: '8080' }] }),
    errors: [
      /spec\.ports\[0\]\.port/,
      /at least one letter/,
      /a quoted number such as "80" is a name, not a number/,
    ],
  },
  {
    title: "a port name with '--'",
    spec: spec({ ports: [{ port: 'web--ui' }] }),
    errors: [/spec\.ports\[0\]\.port/, /no '--'/],
  },
  {
    title: "a port name starting with '-'",
    spec: spec({ ports: [{ port: '-web' }] }),
    errors: [/spec\.ports\[0\]\.port/, /no '-' at either end/],
  },
  {
    title: 'an entry name that is not a DNS label',
    spec: spec({ ports: [{ port: 8080, name: 'Web_UI' }] }),
    errors: [/spec\.ports\[0\]\.name/, /must be a DNS label/],
  },
  {
    title: 'two entries with the same name',
    spec: spec({
      ports: [
        { port: 8080, name: 'http' },
        { port: 9090, name: 'metrics' },
        { port: 8443, name: 'http' },
      ],
    }),
    errors: [/spec\.ports/, /names must be unique/],
  },
  {
    title: 'two entries with the same localPort',
    spec: spec({
      ports: [
        { port: 8080, localPort: 18080 },
        { port: 8443, localPort: 18080 },
      ],
    }),
    errors: [/spec\.ports/, /localPorts must be unique/],
  },
  {
    title: 'localPort 0',
    spec: spec({ ports: [{ port: 8080, localPort: 0 }] }),
    errors: [/spec\.ports\[0\]\.localPort/, /greater than or equal to 1/],
  },
  {
    title: 'localPort 70000',
    spec: spec({ ports: [{ port: 8080, localPort: 70000 }] }),
    errors: [/spec\.ports\[0\]\.localPort/, /less than or equal to 65535/],
  },
  {
    title: 'protocol UDP',
    spec: spec({ ports: [{ port: 53, protocol: 'UDP' }] }),
    errors: [/spec\.ports\[0\]\.protocol/, /must be TCP \(or left out\)/, /UDP and SCTP cannot be forwarded/],
  },
  // listenAddress
  {
    title: 'a host name as listenAddress',
    spec: spec({ listenAddress: 'localhost' }),
    errors: [
      /spec\.listenAddress/,
      /must be an IPv4 address such as 127\.0\.0\.1 or an IPv6 address such as ::1/,
    ],
  },
  {
    title: 'an IPv4 listenAddress with an octet above 255',
    spec: spec({ listenAddress: '127.0.0.256' }),
    errors: [/spec\.listenAddress/, /IPv4 address/],
  },
  {
    title: 'a listenAddress with a port',
    spec: spec({ listenAddress: '127.0.0.1:8080' }),
    errors: [/spec\.listenAddress/, /no host names, ports/],
  },
  {
    title: 'an IPv6 listenAddress with a zone',
    spec: spec({ listenAddress: 'fe80::1%eth0' }),
    errors: [/spec\.listenAddress/, /IPv6 address/],
  },
  {
    title: 'an IPv6 listenAddress with two "::"',
    spec: spec({ listenAddress: '1::2::3' }),
    errors: [/spec\.listenAddress/, /IPv6 address/],
  },
  // allowedSourceRanges
  {
    title: 'a source range without prefix length',
    spec: spec({ allowedSourceRanges: ['10.0.0.1'] }),
    errors: [/spec\.allowedSourceRanges\[0\]/, /must be CIDRs such as 10\.0\.0\.0\/8 or fd00::\/8/],
  },
  {
    title: 'an IPv4 source range with prefix /33',
    spec: spec({ allowedSourceRanges: ['10.0.0.0/8', '10.0.0.0/33'] }),
    errors: [/spec\.allowedSourceRanges\[1\]/, /prefix length of 0-32/],
  },
  {
    title: 'an IPv6 source range with prefix /129',
    spec: spec({ allowedSourceRanges: ['fd00::/129'] }),
    errors: [/spec\.allowedSourceRanges\[0\]/, /IPv6 address with 0-128/],
  },
  {
    title: 'a source range that is a name',
    spec: spec({ allowedSourceRanges: ['office/24'] }),
    errors: [/spec\.allowedSourceRanges\[0\]/, /must be CIDRs/],
  },
  {
    title: 'the same source range twice',
    spec: spec({ allowedSourceRanges: ['10.0.0.0/8', '10.0.0.0/8'] }),
    errors: [/spec\.allowedSourceRanges\[1\]/, /Duplicate value: "10\.0\.0\.0\/8"/],
  },
  {
    title: '65 source ranges',
    spec: spec({ allowedSourceRanges: Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`) }),
    errors: [/spec\.allowedSourceRanges/, /Too many: 65: must have at most 64 items/],
  },
  // allowedClients
  {
    title: 'an empty allowedClients list',
    spec: spec({ allowedClients: [] }),
    errors: [/spec\.allowedClients/, /must list at least one peer; leave it out for the default/],
  },
  {
    title: 'an allowedClients entry with no selector',
    spec: spec({ allowedClients: [{ namespaceSelector: { matchLabels: { team: 'a' } } }, {}] }),
    errors: [/spec\.allowedClients\[1\]/, /must set namespaceSelector, podSelector or both/],
  },
  {
    title: 'an allowedClients namespaceSelector with a bad label key',
    spec: spec({ allowedClients: [{ namespaceSelector: { matchLabels: { 'bad key': 'a' } } }] }),
    errors: [/spec\.allowedClients\[0\]\.namespaceSelector\.matchLabels/, /must be label keys/],
  },
  {
    title: 'an allowedClients podSelector expression In without values',
    spec: spec({
      allowedClients: [{ podSelector: { matchExpressions: [{ key: 'role', operator: 'In' }] } }],
    }),
    errors: [/spec\.allowedClients\[0\]\.podSelector\.matchExpressions\[0\]/, /values must be non-empty/],
  },
  {
    title: '17 allowedClients entries',
    spec: spec({
      allowedClients: Array.from({ length: 17 }, (_, i) => ({ podSelector: { matchLabels: { i: `${i}` } } })),
    }),
    errors: [/spec\.allowedClients/, /Too many: 17: must have at most 16 items/],
  },
  // className
  {
    title: 'a className with capital letters',
    spec: spec({ className: 'Alice' }),
    errors: [/spec\.className/, /className must be a DNS label/],
  },
  {
    title: 'an empty className',
    spec: spec({ className: '' }),
    errors: [/spec\.className/, /className must be a DNS label/],
  },
  {
    title: 'a className longer than 63 characters',
    spec: spec({ className: 'c'.repeat(64) }),
    errors: [/spec\.className/, /Too long: may not be (longer|more) than 63/],
  },
  // ttl
  {
    title: 'ttl 0s',
    spec: spec({ ttl: '0s' }),
    errors: [/spec\.ttl/, /must be a positive duration such as 90s, 15m or 1h30m/],
  },
  {
    title: 'a negative ttl',
    spec: spec({ ttl: '-5m' }),
    errors: [/spec\.ttl/, /positive duration/, /no spaces or sign/],
  },
  {
    title: 'a ttl in days',
    spec: spec({ ttl: '2d' }),
    errors: [/spec\.ttl/, /each followed by a unit h, m, s, ms, us or ns/],
  },
  {
    title: 'a ttl without unit',
    spec: spec({ ttl: '3600' }),
    errors: [/spec\.ttl/, /each followed by a unit/],
  },
  {
    title: 'a ttl with a space',
    spec: spec({ ttl: '1h 30m' }),
    errors: [/spec\.ttl/, /positive duration/],
  },
  {
    title: 'a ttl number of more than 6 digits (would overflow)',
    spec: spec({ ttl: '9999999999999h' }),
    errors: [/spec\.ttl/, /numbers of at most 6 digits/],
  },
  {
    title: 'a ttl longer than 20 characters',
    spec: spec({ ttl: '1h1h1h1h1h1h1h1h1h1h1h' }),
    errors: [/spec\.ttl/, /Too long: may not be (longer|more) than 20/],
  },
  {
    title: 'an unknown loadBalance mode',
    spec: spec({ loadBalance: 'random' }),
    errors: [/spec\.loadBalance/, /Unsupported value: "random": supported values: "first", "spread"/],
  },
  // types
  {
    title: 'suspend as a string',
    spec: spec({ suspend: 'yes' }),
    errors: [/spec\.suspend/, /must be of type boolean/],
  },
  {
    title: 'ports as a number',
    spec: spec({ ports: 8080 }),
    errors: [/spec\.ports/, /must be of type array/],
  },
];

describe('PortForward admission (CRD schema and CEL rules)', function () {
  let cluster: TestCluster;
  let ns: string;

  before(async function () {
    cluster = TestCluster.connect();
    ns = await cluster.createNamespace('admission');
  });

  after(async function () {
    if (ns) await cluster.deleteNamespace(ns);
  });

  function kubectl(args: string[], input?: string): KubectlResult {
    return cluster.kubectl(['-n', ns, ...args], { input });
  }

  /** The CRD's schema as the API server stores it. */
  function installedSchema(): SchemaNode {
    const res = cluster.kubectl(['get', 'crd', 'portforwards.portforward.dev', '-o', 'json']);
    assert.equal(res.code, 0, res.stderr);
    const crd = JSON.parse(res.stdout) as {
      spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
    };
    return crd.spec.versions[0].schema.openAPIV3Schema;
  }

  function assertRefused(res: KubectlResult, errors: RegExp[]): void {
    assert.notEqual(res.code, 0, `expected a refusal, got success: ${res.stdout}`);
    for (const re of errors) assert.match(res.stderr, re);
  }

  describe('installs', function () {
    it('as an Established CRD with short name pf, namespaced, with a status subresource', function () {
      const res = cluster.kubectl(['get', 'crd', 'portforwards.portforward.dev', '-o', 'json']);
      assert.equal(res.code, 0, res.stderr);
      const crd = JSON.parse(res.stdout) as {
        spec: {
          scope: string;
          names: { shortNames: string[]; singular: string };
          versions: { name: string; served: boolean; storage: boolean; subresources?: { status?: object } }[];
        };
        status: { conditions: { type: string; status: string; message: string }[] };
      };
      const established = crd.status.conditions.find((c) => c.type === 'Established');
      assert.equal(established?.status, 'True', JSON.stringify(crd.status.conditions));
      const structural = crd.status.conditions.find((c) => c.type === 'NonStructuralSchema');
      assert.equal(structural, undefined, `the schema is structural: ${structural?.message}`);
      assert.equal(crd.spec.scope, 'Namespaced');
      assert.deepEqual(crd.spec.names.shortNames, ['pf']);
      assert.equal(crd.spec.names.singular, 'portforward');
      assert.deepEqual(
        crd.spec.versions.map((v) => [v.name, v.served, v.storage, !!v.subresources?.status]),
        [['v1alpha1', true, true, true]],
      );
    });

    it('as a new CRD, with every CEL rule compiling and within the cost budget', function () {
      // The API server checks compilation and estimated cost in full only when a rule is new; a copy of
      // the CRD under another group, created with dry-run, goes through exactly that.
      const copy = fs
        .readFileSync(CRD_FILE, 'utf8')
        .replace('name: portforwards.portforward.dev', 'name: portforwards.admission-copy.portforward.dev')
        .replace('group: portforward.dev', 'group: admission-copy.portforward.dev');
      const res = cluster.kubectl(['create', '--dry-run=server', '-f', '-'], { input: copy });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /portforwards\.admission-copy\.portforward\.dev created \(server dry run\)/);
      assert.doesNotMatch(res.stderr, /Warning/i);
    });

    it('with a description on every field of spec and status', function () {
      const missing: string[] = [];
      const walk = (node: SchemaNode, at: string): void => {
        if (!node.description?.trim()) missing.push(at);
        for (const [key, child] of Object.entries(node.properties ?? {})) walk(child, `${at}.${key}`);
        for (const [key, child] of Object.entries(node.items?.properties ?? {}))
          walk(child, `${at}[].${key}`);
      };
      const root = installedSchema();
      walk(root.properties!.spec, 'spec');
      walk(root.properties!.status, 'status');
      assert.deepEqual(missing, [], 'fields without a description');
    });

    it('with CEL rules that use only what Kubernetes 1.28 offers', function () {
      // Newer than 1.28: ip/cidr (1.30), format (1.31), string join/quote/reverse and sets (1.29),
      // semver (1.33), list sort/distinct/flatten/slice (1.34), and the cel.bind macro.
      const newer =
        /\b(ip|cidr|isIP|isCIDR|format|join|quote|reverse|sets\.\w+|semver|isSemver|sort|sortBy|distinct|flatten|slice|cel\.bind)\s*\(/;
      const expressions: string[] = [];
      const walk = (node: SchemaNode): void => {
        for (const v of node['x-kubernetes-validations'] ?? []) {
          expressions.push(v.rule, ...(v.messageExpression ? [v.messageExpression] : []));
          assert.ok(v.message || v.messageExpression, `rule ${v.rule} has a message`);
        }
        for (const child of Object.values(node.properties ?? {})) walk(child);
        if (node.items) walk(node.items);
        if (node.additionalProperties) walk(node.additionalProperties);
      };
      walk(installedSchema());
      assert.ok(expressions.length >= 20, `found ${expressions.length} expressions`);
      for (const e of expressions) assert.doesNotMatch(e, newer);
    });

    it('with server-side apply, as the test control plane installs it', function () {
      const res = cluster.kubectl(['apply', '--server-side', '--dry-run=server', '-f', CRD_FILE]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /portforwards\.portforward\.dev serverside-applied \(server dry run\)/);
      assert.doesNotMatch(res.stderr, /Warning/i);
    });
  });

  describe('refuses', function () {
    REFUSED.forEach((c, i) => {
      it(c.title, function () {
        const res = kubectl(
          ['create', '--dry-run=server', '-f', '-'],
          manifest(`refused-${i}`, c.spec ?? undefined),
        );
        assertRefused(res, c.errors);
      });
    });

    it('several errors of one object in one answer', function () {
      const res = kubectl(
        ['create', '--dry-run=server', '-f', '-'],
        manifest(
          'many-errors',
          spec({
            target: { pod: 'a', service: 'b' },
            ports: [{ port: 0 }, { port: 'HTTP', localPort: 70000 }],
            ttl: 'forever',
            listenAddress: 'localhost',
          }),
        ),
      );
      assertRefused(res, [
        /exactly one of/,
        /spec\.ports\[0\]\.port/,
        /spec\.ports\[1\]\.port/,
        /spec\.ports\[1\]\.localPort/,
        /spec\.ttl/,
        /spec\.listenAddress/,
      ]);
    });

    it('an invalid spec sent with server-side apply, with the same message', function () {
      const res = kubectl(
        ['apply', '--server-side', '--dry-run=server', '-f', '-'],
        manifest('ssa-refused', spec({ target: { pod: 'kuard', deployment: 'kuard' } })),
      );
      assertRefused(res, [
        /spec\.target/,
        /exactly one of pod, service, deployment, statefulSet or selector/,
      ]);
    });

    it('an update that makes a valid object invalid', function () {
      const created = kubectl(['create', '-f', '-'], manifest('update-me', spec({})));
      assert.equal(created.code, 0, created.stderr);
      const res = kubectl(['patch', 'pf', 'update-me', '--type=merge', '-p', '{"spec":{"ttl":"0s"}}']);
      assertRefused(res, [/spec\.ttl/, /positive duration/]);
    });
  });

  describe('refuses unknown fields (kubectl validates strictly by default)', function () {
    it('an unknown field of the target (spec.target.container)', function () {
      const res = kubectl(
        ['create', '--dry-run=server', '-f', '-'],
        manifest('unknown-target-field', spec({ target: { pod: 'kuard', container: 'web' } })),
      );
      assertRefused(res, [/unknown field "spec\.target\.container"/]);
    });

    it('an ipBlock peer in allowedClients (allowedSourceRanges holds CIDRs)', function () {
      const res = kubectl(
        ['create', '--dry-run=server', '-f', '-'],
        manifest('ipblock', spec({ allowedClients: [{ ipBlock: { cidr: '10.0.0.0/8' } }] })),
      );
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /unknown field "spec\.allowedClients\[0\]\.ipBlock"/);
    });

    it('an unknown field of a port', function () {
      const res = kubectl(
        ['create', '--dry-run=server', '-f', '-'],
        manifest('unknown-port-field', spec({ ports: [{ port: 8080, hostPort: 80 }] })),
      );
      assertRefused(res, [/unknown field "spec\.ports\[0\]\.hostPort"/]);
    });

    it('an unknown field of spec, with server-side apply', function () {
      const res = kubectl(
        ['apply', '--server-side', '--dry-run=server', '-f', '-'],
        manifest('unknown-ssa', spec({ replicas: 2 })),
      );
      assertRefused(res, [/\.spec\.replicas: field not declared in schema/]);
    });

    it('protocol UDP even from a client that does not validate fields (a rule, not pruning)', function () {
      const res = kubectl(
        ['create', '--validate=false', '--dry-run=server', '-f', '-'],
        manifest('udp-lax', spec({ ports: [{ port: 53, protocol: 'UDP' }] })),
      );
      assertRefused(res, [/spec\.ports\[0\]\.protocol/, /must be TCP/]);
    });

    it('but only prunes them when the client asks for no field validation (the API server default)', function () {
      const res = kubectl(
        ['create', '--validate=false', '-o', 'json', '-f', '-'],
        manifest('pruned', spec({ target: { pod: 'kuard', container: 'web' } })),
      );
      assert.equal(res.code, 0, res.stderr);
      const pf = JSON.parse(res.stdout) as PortForward;
      assert.deepEqual(pf.spec.target, { pod: 'kuard' }, 'the unknown field was dropped, not stored');
    });
  });

  describe('accepts', function () {
    const ACCEPTED: { title: string; spec: Spec }[] = [
      { title: 'a pod target with one numbered port', spec: spec({}) },
      {
        title: 'a service target with a named port, name and localPort',
        spec: spec({
          target: { service: 'kuard' },
          ports: [{ port: 'http', name: 'web', localPort: 18080 }],
        }),
      },
      {
        title: 'a deployment target with several ports',
        spec: spec({
          target: { deployment: 'api.v2' },
          ports: [
            { port: 8080, name: 'http' },
            { port: 'grpc', name: 'grpc', localPort: 19090 },
            { port: 9090 },
          ],
        }),
      },
      {
        title: 'a statefulSet target',
        spec: spec({ target: { statefulSet: 'db' }, ports: [{ port: 5432 }] }),
      },
      {
        title: 'a selector with matchLabels',
        spec: spec({
          target: { selector: { matchLabels: { app: 'kuard', 'app.kubernetes.io/part-of': 'demo' } } },
        }),
      },
      {
        title: 'a selector with matchExpressions',
        spec: spec({
          target: {
            selector: {
              matchExpressions: [
                { key: 'app', operator: 'In', values: ['kuard', 'kuard-canary'] },
                { key: 'example.com/tier', operator: 'NotIn', values: ['batch'] },
                { key: 'ready', operator: 'Exists' },
                { key: 'legacy', operator: 'DoesNotExist', values: [] },
              ],
            },
          },
        }),
      },
      {
        title: '32 ports with unique names and local ports',
        spec: spec({ ports: ports(32, (i) => ({ port: 8000 + i, name: `p${i}`, localPort: 20000 + i })) }),
      },
      {
        title: 'ports at the edges: 1, 65535 and a 15-character name',
        spec: spec({
          ports: [{ port: 1 }, { port: 65535, localPort: 65535 }, { port: 'abcdefghijklmno', localPort: 1 }],
        }),
      },
      { title: 'explicit protocol TCP', spec: spec({ ports: [{ port: 8080, protocol: 'TCP' }] }) },
      { title: 'an IPv4 listenAddress', spec: spec({ listenAddress: '0.0.0.0' }) },
      { title: 'an IPv6 listenAddress', spec: spec({ listenAddress: '::1' }) },
      { title: 'an IPv4-mapped IPv6 listenAddress', spec: spec({ listenAddress: '::ffff:127.0.0.1' }) },
      {
        title: 'IPv4 and IPv6 source ranges',
        spec: spec({
          allowedSourceRanges: [
            '10.0.0.0/8',
            '192.168.1.7/32',
            '0.0.0.0/0',
            'fd00::/8',
            '::1/128',
            '2001:db8::/32',
          ],
        }),
      },
      ...['90s', '15m', '2h', '1h30m', '1.5h', '500ms', '1h0m0.5s'].map((ttl) => ({
        title: `ttl ${ttl}`,
        spec: spec({ ttl }),
      })),
      {
        title: 'allowedClients read like NetworkPolicy peers, empty selectors included',
        spec: spec({
          allowedClients: [
            { namespaceSelector: { matchLabels: { team: 'friends' } } },
            { podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['client'] }] } },
            { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } },
            { podSelector: {} },
          ],
          allowedSourceRanges: ['10.0.0.0/8'],
        }),
      },
      { title: 'a className', spec: spec({ className: 'alice' }) },
      { title: 'a 63-character className', spec: spec({ className: 'c'.repeat(63) }) },
      { title: 'suspend true', spec: spec({ suspend: true }) },
      { title: 'loadBalance spread', spec: spec({ loadBalance: 'spread' }) },
      {
        title: 'a remote target: kubeConfig with a Secret, target.namespace over there (Cluster API key)',
        spec: spec({
          kubeConfig: { secretRef: { name: 'staging-kubeconfig', key: 'value' } },
          target: { service: 'postgres', namespace: 'orders' },
        }),
      },
      {
        title: 'a remote target without target.namespace (the same namespace name over there)',
        spec: spec({ kubeConfig: { secretRef: { name: 'staging-kubeconfig' } } }),
      },
    ];

    ACCEPTED.forEach((c, i) => {
      it(c.title, function () {
        const res = kubectl(
          ['create', '--dry-run=server', '-o', 'json', '-f', '-'],
          manifest(`accepted-${i}`, c.spec),
        );
        assert.equal(res.code, 0, res.stderr);
        assert.doesNotMatch(res.stderr, /Warning/i);
      });
    });

    it('a real create with server-side apply, defaulting suspend to false, and a re-apply', function () {
      const input = manifest(
        'kuard',
        spec({
          target: { service: 'kuard' },
          ports: [{ port: 8080, name: 'http', localPort: 18080 }],
          ttl: '2h',
        }),
      );
      const first = kubectl(['apply', '--server-side', '--field-manager=gitops', '-f', '-'], input);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /portforward\.portforward\.dev\/kuard serverside-applied/);
      const again = kubectl(['apply', '--server-side', '--field-manager=gitops', '-f', '-'], input);
      assert.equal(again.code, 0, again.stderr);
      const got = kubectl(['get', 'pf', 'kuard', '-o', 'json']);
      assert.equal(got.code, 0, got.stderr);
      const pf = JSON.parse(got.stdout) as PortForward;
      assert.equal(pf.spec.suspend, false);
      assert.equal(pf.metadata.generation, 1, 'an identical re-apply changes nothing');
      assert.deepEqual(pf.spec.ports, [{ port: 8080, name: 'http', localPort: 18080 }]);
    });
  });

  describe('kubectl', function () {
    it('explain pf.spec.ports teaches the port fields', function () {
      const res = cluster.kubectl(['explain', 'pf.spec.ports']);
      assert.equal(res.code, 0, res.stderr);
      const out = res.stdout.replace(/\s+/g, ' ');
      assert.match(out, /GROUP: portforward\.dev/);
      assert.match(out, /The ports to forward, 1 to 32 entries/);
      assert.match(out, /Only TCP can be forwarded/);
      assert.match(out, /port <Object> -required-|port <IntOrString> -required-/);
      assert.match(out, /a number from 1 to 65535, or a name/);
      assert.match(out, /IANA service name/);
      assert.match(out, /name <string>/);
      assert.match(out, /unique within spec\.ports/);
      assert.match(out, /localPort <integer>/);
      assert.match(out, /allocated from the operator's --port-range/);
      assert.match(out, /protocol <string>/);
    });

    it('explain pf.spec.target and pf.status describe every field', function () {
      const target = cluster.kubectl(['explain', 'pf.spec.target']);
      assert.equal(target.code, 0, target.stderr);
      const t = target.stdout.replace(/\s+/g, ' ');
      assert.match(t, /Set exactly one of pod, service, deployment, statefulSet or selector/);
      for (const f of ['pod', 'service', 'deployment', 'statefulSet', 'selector'])
        assert.match(t, new RegExp(` ${f} <`));

      const clients = cluster.kubectl(['explain', 'pf.spec.allowedClients']);
      assert.equal(clients.code, 0, clients.stderr);
      assert.match(clients.stdout.replace(/\s+/g, ' '), /read the way a NetworkPolicy reads its peers/);
      assert.match(cluster.kubectl(['explain', 'pf.spec.className']).stdout, /--class NAME/);

      const status = cluster.kubectl(['explain', 'pf.status', '--recursive']);
      assert.equal(status.code, 0, status.stderr);
      for (const f of [
        'observedGeneration',
        'phase',
        'message',
        'pod',
        'uid',
        'endpoints',
        'targetPort',
        'url',
        'connections',
        'active',
        'bytesSent',
        'bytesReceived',
        'retargets',
        'refusedClients',
        'notAPod',
        'podNotAllowed',
        'outsideSourceRanges',
        'lastError',
        'startTime',
        'expiryTime',
        'conditions',
        'lastTransitionTime',
      ]) {
        assert.match(status.stdout, new RegExp(`\\b${f}\\b`), `status field ${f}`);
      }
      const phase = cluster.kubectl(['explain', 'pf.status.phase']);
      assert.match(phase.stdout.replace(/\s+/g, ' '), /Pending \(starting, or waiting for a ready pod\)/);
    });

    it('get pf prints the target, pod, ports, endpoint, phase, active connections, age and class', function () {
      const created = kubectl(
        ['create', '-f', '-'],
        manifest(
          'columns',
          spec({
            target: { deployment: 'kuard' },
            ports: [{ port: 8080, name: 'http' }, { port: 9090 }],
            className: 'alice',
          }),
        ),
      );
      assert.equal(created.code, 0, created.stderr);
      const status = {
        status: {
          observedGeneration: 1,
          phase: 'Ready',
          message: 'forwarding 2 ports to pod kuard-59f4bf4795-m9bzb',
          pod: { name: 'kuard-59f4bf4795-m9bzb', uid: '3f1c2d9e-0000-4000-8000-000000000001' },
          endpoints: [
            {
              name: 'http',
              port: 8080,
              targetPort: 8080,
              address: '127.0.0.1',
              localPort: 18080,
              url: 'tcp://127.0.0.1:18080',
            },
            {
              port: 9090,
              targetPort: 9090,
              address: '127.0.0.1',
              localPort: 20001,
              url: 'tcp://127.0.0.1:20001',
            },
          ],
          connections: { active: 3, total: 12, failed: 1 },
          bytesSent: 1024,
          bytesReceived: 4096,
          retargets: 0,
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              observedGeneration: 1,
              lastTransitionTime: '2024-01-01T00:00:00Z',
              reason: 'Forwarding',
              message: 'listeners bound and pod ready',
            },
          ],
        },
      };
      const patched = kubectl([
        'patch',
        'pf',
        'columns',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify(status),
      ]);
      assert.equal(patched.code, 0, patched.stderr);

      const res = kubectl(['get', 'pf', 'columns']);
      assert.equal(res.code, 0, res.stderr);
      const [header, row] = res.stdout.trim().split('\n');
      assert.deepEqual(header.trim().split(/\s+/), [
        'NAME',
        'TARGET',
        'POD',
        'PORTS',
        'ENDPOINT',
        'PHASE',
        'ACTIVE',
        'AGE',
        'CLASS',
      ]);
      const cells = row.trim().split(/\s+/);
      assert.deepEqual(cells.slice(0, 7), [
        'columns',
        '{"deployment":"kuard"}',
        'kuard-59f4bf4795-m9bzb',
        '8080',
        'tcp://127.0.0.1:18080',
        'Ready',
        '3',
      ]);
      assert.match(cells[7], /^\d+s$/);
      assert.equal(cells[8], 'alice');
    });
  });
});
