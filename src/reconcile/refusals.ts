// Clients the relay refused at accept, told apart and counted for status.refusedClients: the relay
// reports only an address and the rule in force; whether that address is a pod (and which) is known
// here, from the same directory that decided who may connect.
//
// Guarantees
// - Counts continue from the PortForward's status (another process, or another operator of a class,
//   wrote them before), like the connection counters.
// - forget() drops a PortForward this operator no longer serves; its counts are in its status.
import type { PortForward, RefusalReason, RefusedClients } from '../api/v1alpha1';
import type { ClientRule } from '../relay';
import type { ClientDirectory } from './clients';
import { keyOf } from '../api/key';

export interface Refusal {
  reason: RefusalReason;
  /** The pod with the client's address (`namespace/name`), when there is one. */
  pod?: string;
}

const REASONS: readonly RefusalReason[] = ['notAPod', 'podNotAllowed', 'outsideSourceRanges'];

export class ClientRefusals {
  private readonly byKey = new Map<string, RefusedClients>();

  constructor(
    private readonly directory: ClientDirectory,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Why the client at `address` was refused, counted for `pf`. */
  record(pf: PortForward, address: string, rule: ClientRule): Refusal {
    const pod = this.directory.podAt(address);
    const reason: RefusalReason =
      rule === 'sourceRanges' ? 'outsideSourceRanges' : pod ? 'podNotAllowed' : 'notAPod';
    const counts = this.counts(pf);
    counts[reason] = (counts[reason] ?? 0) + 1;
    counts.last = { address, reason, ...(pod ? { pod } : {}), time: this.now().toISOString() };
    return { reason, ...(pod ? { pod } : {}) };
  }

  /** status.refusedClients for `pf`: undefined while none was ever refused. */
  status(pf: PortForward): RefusedClients | undefined {
    const counts = this.byKey.get(keyOf(pf)) ?? pf.status?.refusedClients;
    return counts && { ...counts };
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }

  private counts(pf: PortForward): RefusedClients {
    const key = keyOf(pf);
    let counts = this.byKey.get(key);
    if (!counts) {
      const from = pf.status?.refusedClients ?? {};
      counts = Object.fromEntries(REASONS.map((r) => [r, from[r] ?? 0]));
      if (from.last) counts.last = { ...from.last };
      this.byKey.set(key, counts);
    }
    return counts;
  }
}
