// One Node.js LTS line everywhere, pinned in .nvmrc: the image, engines, @types/node, the README and
// the Makefile's fetch all name the same major, and the tests themselves run on it.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { operatorNodeFlags, repoRoot } from '../../tools/testenv/paths';

const read = (f: string): string => fs.readFileSync(path.join(repoRoot, f), 'utf8');

describe('the Node.js runtime, pinned in .nvmrc', function () {
  const pinned = read('.nvmrc').trim();
  const major = pinned.split('.')[0];
  const pkg = JSON.parse(read('package.json')) as {
    engines: { node: string };
    devDependencies: Record<string, string>;
  };

  it('is an exact version of an LTS line no older than 24', function () {
    assert.match(pinned, /^\d+\.\d+\.\d+$/);
    assert.ok(Number(major) >= 24 && Number(major) % 2 === 0, `${pinned} is an even (LTS) line, 24 or newer`);
  });

  it('is the version the tests run on (make puts it first on PATH)', function () {
    assert.equal(process.versions.node.split('.')[0], major, `tests run on Node ${process.versions.node}`);
  });

  it('is the same major in the Dockerfile, engines, @types/node and the README', function () {
    assert.match(
      read('Dockerfile'),
      new RegExp(`^ARG NODE_IMAGE=node:${pinned.replace(/\./g, '\\.')}-`, 'm'),
    );
    assert.equal(pkg.engines.node, `>=${major}.0.0`);
    assert.match(pkg.devDependencies['@types/node'], new RegExp(`^\\^${major}\\.`));
    assert.match(read('README.md'), new RegExp(`Node\\.js ${major} `));
    assert.match(read('README.md'), new RegExp(`Node\\.js ${pinned.replace(/\./g, '\\.')}`));
  });

  it("starts the operator with the image's Node.js flags everywhere it is started from a command", function () {
    const flags = operatorNodeFlags();
    assert.ok(flags.length > 0, "the Dockerfile's ENTRYPOINT names its flags");
    const command = `node ${flags.join(' ')} dist/main.js`;
    assert.equal((JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start, command);
    assert.match(read('Makefile'), new RegExp(`^\\t${command.replace(/[.]/g, '\\.')} \\$\\(ARGS\\)$`, 'm'));
  });

  it("accepts every one of the image's Node.js flags (a V8 flag a newer Node.js dropped would stop the operator)", function () {
    const flags = operatorNodeFlags();
    const out = execFileSync(process.execPath, [...flags, '-e', 'process.stdout.write("started")'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(out, 'started');
  });

  it('hack/ensure-node.sh says nothing and changes nothing when the node on PATH is new enough', function () {
    const out = execFileSync(path.join(repoRoot, 'hack', 'ensure-node.sh'), {
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(out, '');
  });
});
