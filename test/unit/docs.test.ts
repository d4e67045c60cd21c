// The documentation stays in sync with the code: every field of the CRD (with its default, enum values
// and bounds) in docs/api.md, every flag in docs/operations.md, every status and Event reason in
// docs/troubleshooting.md or docs/api.md, and every `make` target the README names in the Makefile.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
// Plain YAML, as the file has it: client-node's loadYaml (2.x) deserializes a CRD into its model
// classes, which rename `default`, `enum` and `x-kubernetes-*` (to `_default`, `_enum`, `x_kubernetes_*`).
import { load } from 'js-yaml';
import { envName, flagDefs, parseConfig } from '../../src/config/flags';
import { TRANSPORT_NAMES } from '../../src/relay';
import { repoRoot } from '../../tools/testenv/paths';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  enum?: (string | number | boolean)[];
  default?: string | number | boolean;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxLength?: number;
  maxProperties?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
}

interface Crd {
  spec: {
    versions: {
      name: string;
      additionalPrinterColumns?: { name: string }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

const read = (file: string): string => fs.readFileSync(path.join(repoRoot, file), 'utf8');

/** Every field under spec and status, as `spec.ports[].localPort`; maps and scalar lists end a path. */
function fieldPaths(schema: Schema, prefix: string, out = new Map<string, Schema>()): Map<string, Schema> {
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const p = prefix ? `${prefix}.${name}` : name;
    out.set(p, child);
    if (child.properties) fieldPaths(child, p, out);
    if (child.items?.properties) fieldPaths(child.items, `${p}[]`, out);
  }
  return out;
}

/** The rows of the field tables in docs/api.md: first cell `path`, the whole row text. */
function documentedRows(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of markdown.split('\n')) {
    const m = /^\|\s*`((?:spec|status)(?:\.[A-Za-z]+(?:\[\])?)*)`\s*\|/.exec(line);
    if (m) rows.set(m[1], line);
  }
  return rows;
}

/** A row's cells: Field | Type | Default | Validation | Description. */
function cells(row: string): { type: string; default: string; validation: string } {
  const c = row
    .split('|')
    .slice(1, -1)
    .map((x) => x.trim());
  return { type: c[1] ?? '', default: c[2] ?? '', validation: c[3] ?? '' };
}

/** What a row must state about a field, cell by cell: its type, default, enum values and bounds. */
function expectations(s: Schema): { type: string[]; default: string[]; validation: string[] } {
  const bounds = (x: Schema): string[] =>
    [x.minimum, x.maximum, x.minItems, x.maxItems, x.maxLength, x.maxProperties]
      .filter((n): n is number => n !== undefined)
      .map(String);
  return {
    type: [s['x-kubernetes-int-or-string'] ? 'integer or string' : (s.type ?? '')],
    default: s.default === undefined ? [] : [`\`${String(s.default)}\``],
    validation: [
      ...(s.enum ?? []).map((v) => `\`${String(v)}\``),
      ...bounds(s),
      // Constraints on list items and map values belong to the field that holds them.
      ...(s.items && !s.items.properties ? bounds(s.items) : []),
      ...(typeof s.additionalProperties === 'object' ? bounds(s.additionalProperties) : []),
    ],
  };
}

const NOT_RELEASED = 'not yet released';

describe('docs/api.md and the CRD', function () {
  const crd = load(read('crds/portforward.yaml')) as Crd;
  const version = crd.spec.versions[0];
  const root = version.schema.openAPIV3Schema;
  const fields = fieldPaths(
    { properties: { spec: root.properties!.spec, status: root.properties!.status } },
    '',
  );
  const api = read('docs/api.md');
  const rows = documentedRows(api);

  it('documents every field under spec and status, in a table row of its own', function () {
    const missing = [...fields.keys()].filter((p) => !rows.has(p));
    assert.deepEqual(missing, [], 'CRD fields without a row in docs/api.md');
  });

  it("states each field's type, default, enum values and bounds as the CRD has them", function () {
    const wrong: string[] = [];
    for (const [p, schema] of fields) {
      const row = rows.get(p);
      if (!row) continue;
      const got = cells(row);
      const want = expectations(schema);
      for (const cell of ['type', 'default', 'validation'] as const) {
        for (const w of want[cell])
          if (!got[cell].includes(w)) wrong.push(`${p}: its ${cell} cell lacks ${w}`);
      }
      if (schema['x-kubernetes-validations'] && (got.validation === '' || got.validation === '—')) {
        wrong.push(`${p}: has validation rules but its validation cell says none`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('documents no field the CRD lacks, unless the row says it is not yet released', function () {
    const stale = [...rows.entries()]
      .filter(([p, row]) => !fields.has(p) && !row.toLowerCase().includes(NOT_RELEASED))
      .map(([p]) => p);
    assert.deepEqual(stale, [], 'rows in docs/api.md for fields the CRD does not have');
  });

  it('lists every printer column of `kubectl get pf`', function () {
    for (const col of version.additionalPrinterColumns ?? []) {
      assert.match(api, new RegExp(`^\\| ${col.name.toUpperCase()} +\\|`, 'm'), `printer column ${col.name}`);
    }
  });
});

describe('the transport names', function () {
  it("are the CRD's status.transport enum, and what --transport takes besides auto", function () {
    const crd = load(read('crds/portforward.yaml')) as Crd;
    const status = crd.spec.versions[0].schema.openAPIV3Schema.properties!.status;
    assert.deepEqual(status.properties?.transport?.enum, [...TRANSPORT_NAMES]);
    for (const name of ['auto', ...TRANSPORT_NAMES]) {
      assert.equal(parseConfig([`--transport=${name}`], {}).transport, name);
    }
    assert.throws(
      () => parseConfig(['--transport=quic'], {}),
      /not one of auto, spdy, spdy-websocket, websocket/,
    );
  });
});

describe('docs/operations.md and the flags', function () {
  it('documents every flag of the operator with its environment variable', function () {
    const ops = read('docs/operations.md');
    for (const def of flagDefs()) {
      assert.ok(ops.includes(`\`--${def.name}\``), `--${def.name} is documented`);
      assert.ok(ops.includes(`\`${envName(def)}\``), `${envName(def)} is documented`);
    }
  });

  it('documents no flag the operator lacks, unless the row says it is not yet released', function () {
    const names = new Set(flagDefs().map((d) => d.name));
    const stale = read('docs/operations.md')
      .split('\n')
      .map((line) => [/^\| `--([a-z-]+)`/.exec(line)?.[1], line] as const)
      .filter(
        ([flag, line]) =>
          flag !== undefined && !names.has(flag) && !line.toLowerCase().includes(NOT_RELEASED),
      )
      .map(([flag]) => flag);
    assert.deepEqual(stale, [], 'flag rows in docs/operations.md for flags --help does not list');
  });
});

describe('docs/troubleshooting.md and the reasons', function () {
  /** Reasons of conditions, phases and Events as the operator's code writes them. */
  function reasonsInCode(): Set<string> {
    const found = new Set<string>();
    const files = fs
      .readdirSync(path.join(repoRoot, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.includes('testing'));
    const patterns = [
      /reason: '([A-Z][A-Za-z]+)'/g,
      /\bfail\(\s*'([A-Z][A-Za-z]+)'/g,
      /\.record\(\s*[\w.]+,\s*'(?:Normal|Warning)',\s*'([A-Z][A-Za-z]+)'/g,
    ];
    for (const f of files) {
      const text = fs.readFileSync(path.join(repoRoot, 'src', f), 'utf8');
      for (const re of patterns) for (const m of text.matchAll(re)) found.add(m[1]);
      const union = /type ResolveFailureReason =([^;]+);/.exec(text);
      if (union) for (const m of union[1].matchAll(/'([A-Z][A-Za-z]+)'/g)) found.add(m[1]);
    }
    return found;
  }

  it('explains every reason the operator writes into status or Events', function () {
    const docs = read('docs/troubleshooting.md') + read('docs/api.md');
    const reasons = reasonsInCode();
    assert.ok(reasons.has('PortInUse') && reasons.has('Forwarding'), 'the scan finds reasons');
    const missing = [...reasons].filter((r) => !docs.includes(`\`${r}\``));
    assert.deepEqual(missing, [], 'reasons not explained in docs/troubleshooting.md or docs/api.md');
  });
});

describe('README.md', function () {
  it('names only make targets that the Makefile has', function () {
    const makefile = read('Makefile');
    const targets = new Set([...makefile.matchAll(/^([a-zA-Z0-9_-]+):/gm)].map((m) => m[1]));
    const named = [...read('README.md').matchAll(/(?:^|`)make ([a-z][a-z0-9-]*)/gm)].map((m) => m[1]);
    assert.ok(named.includes('demo') && named.includes('test'));
    assert.deepEqual(
      named.filter((t) => !targets.has(t)),
      [],
    );
  });

  it('links only files that exist', function () {
    for (const doc of ['README.md', ...fs.readdirSync(path.join(repoRoot, 'docs')).map((f) => `docs/${f}`)]) {
      if (!doc.endsWith('.md')) continue;
      for (const m of read(doc).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(m[1])) continue; // http:, https:, mailto:
        const target = path.resolve(path.dirname(path.join(repoRoot, doc)), m[1]);
        assert.ok(fs.existsSync(target), `${doc} links ${m[1]}, which does not exist`);
      }
    }
  });
});
