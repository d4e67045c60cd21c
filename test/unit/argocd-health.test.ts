// deploy/argocd/health.lua, the Argo CD health check of PortForwards, run by a real Lua interpreter
// (lua5.1, the dialect of Argo CD's gopher-lua, else lua5.4) the way Argo CD runs it: the object as the
// global `obj`, the script's return value as the health. Skipped when no Lua interpreter is installed
// (`apt-get install lua5.1`).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '../../tools/testenv/paths';

const SCRIPT = path.join(repoRoot, 'deploy', 'argocd', 'health.lua');

function findLua(): string | undefined {
  for (const bin of ['lua5.1', 'lua5.4', 'lua']) {
    if (spawnSync(bin, ['-v'], { encoding: 'utf8' }).status === 0) return bin;
  }
  return undefined;
}

/** A JSON value as a Lua table constructor (what Argo CD hands the script, in Lua's terms). */
function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v); // JSON string escapes are valid Lua escapes here
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  return `{${Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `[${JSON.stringify(k)}] = ${toLua(x)}`)
    .join(', ')}}`;
}

function health(lua: string, obj: unknown): { status: string; message: string } {
  const driver = `obj = ${toLua(obj)}
local hs = dofile(${JSON.stringify(SCRIPT)})
io.write(hs.status, "\\n", hs.message or "")`;
  const out = spawnSync(lua, ['-'], { input: driver, encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const [status, ...message] = out.stdout.split('\n');
  return { status, message: message.join('\n') };
}

const cond = (type: string, status: string, message = `${type} is ${status}`): object => ({
  type,
  status,
  reason: type,
  message,
});

function pf(status: object | undefined, generation = 2): object {
  return {
    apiVersion: 'portforward.dev/v1alpha1',
    kind: 'PortForward',
    metadata: { name: 'web', namespace: 'demo', generation },
    spec: { target: { pod: 'web' }, ports: [{ port: 8080 }] },
    ...(status ? { status } : {}),
  };
}

describe('deploy/argocd/health.lua (Argo CD health of a PortForward)', function () {
  const lua = findLua();
  before(function () {
    if (!lua) this.skip();
  });

  const cases: [title: string, obj: object, status: string, message: RegExp][] = [
    [
      'Progressing before the operator wrote any status',
      pf(undefined),
      'Progressing',
      /Waiting for the operator/,
    ],
    [
      'Progressing while the status is of an older generation',
      pf({ observedGeneration: 1, phase: 'Ready', conditions: [cond('Ready', 'True')] }),
      'Progressing',
      /generation 2/,
    ],
    [
      'Healthy when Ready',
      pf({
        observedGeneration: 2,
        phase: 'Ready',
        message: 'forwarding 1 port to pod demo/web',
        conditions: [cond('Ready', 'True'), cond('TargetResolved', 'True')],
      }),
      'Healthy',
      /^forwarding 1 port to pod demo\/web$/,
    ],
    [
      'Progressing while Pending',
      pf({
        observedGeneration: 2,
        phase: 'Pending',
        message: 'binding',
        conditions: [cond('Reconciling', 'True')],
      }),
      'Progressing',
      /^binding$/,
    ],
    [
      'Degraded when no target pod is ready',
      pf({
        observedGeneration: 2,
        phase: 'Degraded',
        message: 'pod demo/web not found',
        conditions: [cond('Ready', 'False'), cond('Reconciling', 'True')],
      }),
      'Degraded',
      /pod demo\/web not found/,
    ],
    [
      'Degraded with the Stalled message when Failed',
      pf({
        observedGeneration: 2,
        phase: 'Failed',
        message: 'local port 127.0.0.1:18080 is in use',
        conditions: [cond('Ready', 'False'), cond('Stalled', 'True', 'local port 127.0.0.1:18080 is in use')],
      }),
      'Degraded',
      /is in use/,
    ],
    [
      'Degraded when Failed without Stalled (e.g. the port range is full)',
      pf({
        observedGeneration: 2,
        phase: 'Failed',
        message: 'no free port',
        conditions: [cond('Ready', 'False')],
      }),
      'Degraded',
      /no free port/,
    ],
    [
      'Suspended when spec.suspend is true',
      // As the operator writes it: no Ready condition when closed on purpose (ADR 11).
      pf({ observedGeneration: 2, phase: 'Suspended', conditions: [cond('TargetResolved', 'True')] }),
      'Suspended',
      /spec\.suspend/,
    ],
    [
      'Suspended when the ttl ran out',
      pf({
        observedGeneration: 2,
        phase: 'Expired',
        message: 'ttl 2h ran out at 2026-01-01T02:00:00Z',
        conditions: [cond('TargetResolved', 'True')],
      }),
      'Suspended',
      /ttl 2h ran out/,
    ],
    [
      'Progressing for a phase it does not know',
      pf({ observedGeneration: 2, phase: 'Unheard', message: 'new' }),
      'Progressing',
      /^new$/,
    ],
    [
      'Healthy without metadata.generation (as some tools send objects)',
      { metadata: {}, status: { phase: 'Ready', message: 'ok' } },
      'Healthy',
      /^ok$/,
    ],
  ];

  for (const [title, obj, status, message] of cases) {
    it(title, function () {
      const h = health(lua!, obj);
      assert.equal(h.status, status, `message: ${h.message}`);
      assert.match(h.message, message);
    });
  }
});
