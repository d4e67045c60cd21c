// Processes of a demo: every one the demo starts names its state folder on its command line (the
// control plane's data, certificate and kubeconfig paths, the operator's --kubeconfig), so a /proc scan
// finds them, also after a crashed run. Used by the demo's clean-up and by the test that proves it.
import { processesUsing, sleep, stopProcess } from '../testenv/procs';

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
