// The header of a benchmark report: when, on what machine and with which versions it ran, so a table
// pasted into docs/benchmarks.md says where its figures come from.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { repoRoot } from '../testenv/paths';

function run(cmd: string, args: string[], cwd?: string): string | undefined {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      timeout: 20_000,
      cwd,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}

function kubectlVersion(kubectl: string): string {
  const out = run(kubectl, ['version', '--client', '-o', 'json']);
  try {
    return (JSON.parse(out ?? '') as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion;
  } catch {
    return 'unknown';
  }
}

function commit(): string {
  const head = run('git', ['rev-parse', '--short', 'HEAD'], repoRoot);
  if (!head) return 'unknown';
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no'], repoRoot);
  return dirty ? `${head} + uncommitted changes` : head;
}

export function header(opts: {
  kubectl: string;
  kubernetes: string;
  kwok: string;
  operatorMain: string;
  settings: string[];
}): string {
  const uname = run('uname', ['-srm']) ?? `${os.type()} ${os.release()} ${os.arch()}`;
  const load = fs.existsSync('/proc/loadavg')
    ? fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    : '?';
  const pfWs = process.env.KUBECTL_PORT_FORWARD_WEBSOCKETS;
  return [
    '## portforward-operator benchmarks',
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${uname}; ${cpuModel()} x ${os.cpus().length}; load average at start ${load}`,
    `- node ${process.version}; kubectl ${kubectlVersion(opts.kubectl)} (port-forward with default settings${
      pfWs === undefined ? '' : `, KUBECTL_PORT_FORWARD_WEBSOCKETS=${pfWs}`
    }); kube-apiserver ${opts.kubernetes}; kwok ${opts.kwok}`,
    `- commit ${commit()}; operator ${opts.operatorMain.replace(`${repoRoot}/`, '')}`,
    ...opts.settings.map((s) => `- ${s}`),
  ].join('\n');
}
