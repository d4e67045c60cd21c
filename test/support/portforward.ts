// PortForward objects through the real API of the test control plane: create, read, patch, delete,
// wait on the status (tools/testenv/portforward.ts, which the benchmarks and the demo share), and read
// a condition.
import type { PortForward } from '../../src/api/v1alpha1';

export {
  applyPortForward,
  deletePortForward,
  getPortForward,
  patchSpec,
  waitForStatus,
} from '../../tools/testenv/portforward';

export function condition(pf: PortForward, type: string): { status: string; reason: string } | undefined {
  return pf.status?.conditions?.find((c) => c.type === type);
}
