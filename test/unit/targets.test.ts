// The target kinds (src/targets/kinds.ts) are the list of record: the CRD's spec.target fields and its
// exactly-one rule, the ClusterRole's read rights and docs/api.md must say the same, so a kind added or
// removed in one place and not in the others fails here.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load, loadAll } from 'js-yaml';
import { GROUP, PLURAL } from '../../src/api/v1alpha1';
import { TARGET_KIND_LIST, targetRbac } from '../../src/targets/kinds';
import { repoRoot } from '../../tools/testenv/paths';

interface Schema {
  properties?: Record<string, Schema>;
  'x-kubernetes-validations'?: { rule: string }[];
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const read = (file: string): string => fs.readFileSync(path.join(repoRoot, file), 'utf8');

/** Fields of spec.target that say where to look, not what: the remote-clusters contract's namespace. */
const NOT_KINDS = new Set(['namespace']);

describe('target kinds', function () {
  const fields = TARGET_KIND_LIST.map((k) => k.field as string);
  const crd = load(read('crds/portforward.yaml')) as {
    spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
  };
  const target = crd.spec.versions[0].schema.openAPIV3Schema.properties!.spec.properties!.target;

  it("are the CRD's spec.target fields, in its order", function () {
    const crdFields = Object.keys(target.properties ?? {}).filter((f) => !NOT_KINDS.has(f));
    assert.deepEqual(crdFields, fields);
  });

  it("are each named in the CRD's exactly-one rule", function () {
    const rule = (target['x-kubernetes-validations'] ?? [])
      .map((v) => v.rule)
      .find((r) => r.includes('size() == 1'));
    assert.ok(rule, 'the exactly-one rule of spec.target');
    assert.deepEqual(
      fields.filter((f) => !rule.includes(`has(self.${f})`)),
      [],
      'kinds the rule does not count',
    );
  });

  it('have the read rights they need in the ClusterRole, and it grants no other reads', function () {
    const role = (
      loadAll(read('deploy/clusterrole.yaml')) as {
        kind: string;
        metadata: { name: string };
        rules?: Rule[];
      }[]
    ).find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'portforward-operator');
    assert.ok(role?.rules, 'the ClusterRole portforward-operator in deploy/clusterrole.yaml');
    const grants = (group: string, resource: string, verb: string): boolean =>
      role.rules!.some(
        (r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb),
      );
    const missing = targetRbac().flatMap((r) =>
      r.verbs
        .filter((v) => !grants(r.apiGroup, r.resource, v))
        .map((v) => `${v} ${r.apiGroup || 'core'}/${r.resource}`),
    );
    assert.deepEqual(missing, [], 'rights the target kinds need');
    const known = new Set([...targetRbac().map((r) => `${r.apiGroup}/${r.resource}`), `${GROUP}/${PLURAL}`]);
    const extra = role.rules
      .filter((r) => r.verbs.includes('watch'))
      .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.map((res) => `${g}/${res}`)))
      .filter((gr) => !known.has(gr));
    assert.deepEqual(extra, [], 'watched resources no target kind reads');
  });

  it('each have a row in docs/api.md, and its spec.target row names them all', function () {
    const api = read('docs/api.md');
    const rows = api.split('\n').filter((l) => /^\|\s*`spec\.target(\.[A-Za-z]+)?`\s*\|/.test(l));
    assert.deepEqual(
      fields.filter((f) => !rows.some((r) => r.includes(`\`spec.target.${f}\``))),
      [],
      'kinds without a row',
    );
    const documented = rows
      .map((r) => /`spec\.target\.([A-Za-z]+)`/.exec(r)?.[1])
      .filter((f): f is string => f !== undefined && !NOT_KINDS.has(f));
    assert.deepEqual(documented, fields, 'rows of kinds the operator lacks');
    const whole = rows.find((r) => r.includes('`spec.target`'));
    assert.deepEqual(
      fields.filter((f) => !whole?.includes(f)),
      [],
      'the spec.target row lists every kind',
    );
  });
});
