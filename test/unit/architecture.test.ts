// The layering of src/ (docs/architecture.md, "Which folder may import which"), checked on the code:
// each folder imports only the folders its layer allows, so the folder graph has no cycle, and no
// file grows past 400 lines. Imports are read with TypeScript's own pre-processor, not a regex.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const SRC = path.resolve(__dirname, '../../../src');

/** What each folder of src/ may import ('' is src/ itself: main.ts and operator.ts). */
const MAY_IMPORT: Record<string, string[]> = {
  api: [],
  // The flags read the transport names from the relay.
  config: ['api', 'relay'],
  // The relay knows nothing of CRDs, flags or the controller: it is given listeners and pods.
  relay: [],
  // The target kinds: what each reads, maps and resolves to, in the cluster it is given.
  targets: ['api'],
  observability: ['api', 'config', 'relay'],
  kube: ['api', 'config', 'observability'],
  reconcile: ['api', 'config', 'kube', 'observability', 'relay', 'targets'],
  controller: ['api', 'config', 'kube', 'observability', 'reconcile', 'relay', 'targets'],
  '': ['api', 'config', 'kube', 'observability', 'reconcile', 'relay', 'targets', 'controller'],
  // Fakes for unit tests (fake timers): used by tests only, importing nothing of the product.
  testing: [],
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The top folder of src/ a file is in ('' for src/ itself). */
function folderOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0] : '';
}

/** Product code: not a test, not a fake under a testing/ folder. */
function isProduct(file: string): boolean {
  return !file.endsWith('.test.ts') && !path.relative(SRC, file).split(path.sep).includes('testing');
}

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
  /** The file imported (its .ts, or a folder's index.ts). */
  target: string;
}

/** The source file an import names. */
function importedFile(target: string): string {
  if (fs.existsSync(target) && fs.statSync(target).isDirectory()) return path.join(target, 'index.ts');
  return fs.existsSync(`${target}.ts`) ? `${target}.ts` : target;
}

function folderEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC).filter(isProduct)) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    for (const { fileName: spec } of info.importedFiles) {
      if (!spec.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), spec);
      if (!target.startsWith(SRC + path.sep)) {
        edges.push({ from: folderOf(file), to: '(outside src)', file, spec, target });
        continue;
      }
      const to = folderOf(
        fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, 'x') : target,
      );
      if (to !== folderOf(file))
        edges.push({ from: folderOf(file), to, file, spec, target: importedFile(target) });
    }
  }
  return edges;
}

function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const trail: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...trail.slice(trail.indexOf(n)), n];
    state.set(n, 'open');
    trail.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    trail.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
}

describe('architecture of src/', function () {
  const edges = folderEdges();

  it('reads the imports it checks (the checker sees the known edges)', function () {
    // Guards against a checker that passes because it found nothing.
    const seen = new Set(edges.map((e) => `${e.from}->${e.to}`));
    for (const known of ['->controller', 'controller->reconcile', 'reconcile->relay', 'kube->api']) {
      assert.ok(seen.has(known), `expected an import ${known}; found ${[...seen].sort().join(', ')}`);
    }
  });

  it('each folder imports only what its layer allows', function () {
    const bad = edges
      .filter((e) => !(MAY_IMPORT[e.from] ?? []).includes(e.to))
      .map(
        (e) => `${path.relative(SRC, e.file)} imports '${e.spec}' (${e.from || 'src'} -> ${e.to || 'src'})`,
      );
    assert.deepEqual(bad, [], 'imports against the layering of docs/architecture.md');
    assert.deepEqual(
      Object.keys(MAY_IMPORT).filter((f) => f && !fs.existsSync(path.join(SRC, f))),
      [],
      'a folder of the rule that src/ no longer has',
    );
    const folders = fs
      .readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    assert.deepEqual(
      folders.filter((f) => !(f in MAY_IMPORT)),
      [],
      'a folder of src/ that the rule does not place',
    );
  });

  it('enters the relay only through its index.ts', function () {
    const door = path.join(SRC, 'relay', 'index.ts');
    const bad = edges
      .filter((e) => e.to === 'relay' && e.target !== door)
      .map((e) => `${path.relative(SRC, e.file)} imports '${e.spec}'`);
    assert.deepEqual(bad, [], 'imports past src/relay/index.ts');
  });

  it('the file import graph has no cycle, type-only imports included', function () {
    const graph = new Map<string, Set<string>>();
    for (const file of sourceFiles(SRC).filter(isProduct)) {
      const deps = new Set<string>();
      for (const { fileName: spec } of ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true)
        .importedFiles) {
        if (spec.startsWith('.'))
          deps.add(path.relative(SRC, importedFile(path.resolve(path.dirname(file), spec))));
      }
      graph.set(path.relative(SRC, file), deps);
    }
    assert.equal(findCycle(graph)?.join(' -> '), undefined);
  });

  it('the folder import graph has no cycle', function () {
    const graph = new Map<string, Set<string>>();
    for (const e of edges) graph.set(e.from, (graph.get(e.from) ?? new Set()).add(e.to));
    assert.equal(findCycle(graph)?.join(' -> '), undefined);
  });

  it('finds a cycle when there is one (the check itself)', function () {
    const graph = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a'])],
    ]);
    assert.deepEqual(findCycle(graph), ['a', 'b', 'c', 'a']);
  });

  it('no file of src/ is over 400 lines', function () {
    const long = sourceFiles(SRC)
      .map((f) => ({ f: path.relative(SRC, f), lines: fs.readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((x) => x.lines > 400)
      .map((x) => `${x.f}: ${x.lines} lines`);
    assert.deepEqual(long, []);
  });
});
