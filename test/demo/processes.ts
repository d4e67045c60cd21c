// Processes of a demo: every one the demo starts names its state folder on its command line (the
// control plane's data, certificate and kubeconfig paths, the operator's --kubeconfig), so a /proc scan
// finds them, also after a crashed run. Used by the demo's clean-up and by the test that proves it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, stopProcess } from '../env/procs';

export interface FoundProcess {
  pid: number;
  /** argv[0], which stopProcess checks again before each signal. */
  command: string;
  cmdline: string;
}

/** Live processes (not zombies, not this one) whose command line names a path inside `dir`. */
export function processesUsing(dir: string): FoundProcess[] {
  const prefix = path.resolve(dir) + path.sep;
  const found: FoundProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) continue;
      if (argv.some((a) => a.includes(prefix))) {
        found.push({ pid: Number(entry), command: argv[0], cmdline: argv.join(' ') });
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Stops every process that still names `dir` (SIGTERM, then SIGKILL); returns how many there were. */
export async function stopProcessesUsing(dir: string, graceMs = 5000): Promise<number> {
  const left = processesUsing(dir);
  await Promise.all(left.map((p) => stopProcess(p, graceMs)));
  // A process that was starting may show up only now.
  await sleep(100);
  const late = processesUsing(dir);
  await Promise.all(late.map((p) => stopProcess(p, 1000)));
  return left.length + late.length;
}
