// Which listener of the last plan each spec.ports entry is, across edits. Pure.
//
// A listener's id is its identity in the relay (an unchanged id, address and local port keep the
// listener bound and its connections open) and in the port allocator (an allocated port stays with
// its id). So an edit that keeps an entry's local port and target port must give it the id it had,
// whatever else moved: `port: 8080` rewritten as `port: http` (the same container port), an entry
// prepended (every index shifts), a name added. An entry is matched to an earlier listener, one to
// one, by the first rule that applies:
//   1. the same name;
//   2. the same local port it asks for (`localPort`), or the one the earlier listener was bound to;
//   3. (no `localPort`, so an allocated port) an earlier listener that had no `localPort` either, on the
//      same address, reaching the same container port (the same `port` as written first, then any),
//      or, while a container port is unknown, with the same `port` as written.
// Anything else is a new listener with a new id, never one an earlier listener had.
//
// Caveats
// - Two entries that are alike in every field (same port, no name, no localPort) cannot be told
//   apart: after an edit, the first of them in spec order takes the earlier listener's id and port.

/** A listener of the last plan (or, after a restart, an endpoint recorded in status). */
export interface PriorListener {
  /** Undefined for one read from status: no listener of this process has it. */
  id?: string;
  name?: string;
  /** spec.ports[].port as written. */
  port: number | string;
  requestedPort?: number;
  address: string;
  /** The local port it was bound to (allocated or requested), when it had one. */
  localPort?: number;
  /** The container port; 0 or undefined when unknown. */
  targetPort?: number;
}

/** A spec.ports entry as the matching sees it. */
export interface ListenerCandidate {
  name?: string;
  port: number | string;
  requestedPort?: number;
  address: string;
  /** The container port; 0 when unknown (a named port with no pod to look it up in). */
  targetPort: number;
}

export interface ListenerIdentity {
  id: string;
  /** The earlier listener's local port when the entry asks for none: it keeps it. */
  keptPort?: number;
}

export function matchListeners(
  entries: ReadonlyArray<ListenerCandidate>,
  prior: ReadonlyArray<PriorListener>,
): ListenerIdentity[] {
  const matched: (PriorListener | undefined)[] = entries.map(() => undefined);
  const taken = new Set<PriorListener>();
  const pass = (applies: (e: ListenerCandidate, p: PriorListener) => boolean): void => {
    entries.forEach((e, i) => {
      if (matched[i]) return;
      const p = prior.find((q) => !taken.has(q) && applies(e, q));
      if (p) {
        matched[i] = p;
        taken.add(p);
      }
    });
  };
  const sameTarget = (e: ListenerCandidate, p: PriorListener): boolean =>
    e.targetPort > 0 && e.targetPort === p.targetPort;
  const allocated = (e: ListenerCandidate, p: PriorListener): boolean =>
    e.requestedPort === undefined && p.requestedPort === undefined && e.address === p.address;

  pass((e, p) => e.name !== undefined && e.name === p.name);
  pass(
    (e, p) =>
      e.requestedPort !== undefined &&
      e.address === p.address &&
      (e.requestedPort === p.requestedPort || e.requestedPort === p.localPort),
  );
  pass((e, p) => allocated(e, p) && sameTarget(e, p) && String(e.port) === String(p.port));
  pass((e, p) => allocated(e, p) && sameTarget(e, p));
  pass((e, p) => allocated(e, p) && !(e.targetPort > 0 && p.targetPort) && String(e.port) === String(p.port));

  // New ids never repeat one an earlier listener had: the allocator may still hold a port under it.
  const used = new Set(prior.map((p) => p.id).filter((id): id is string => id !== undefined));
  for (const p of matched) if (p?.id) used.add(p.id);
  return entries.map((e, i) => {
    const p = matched[i];
    const keptPort = e.requestedPort === undefined && p?.address === e.address ? p.localPort : undefined;
    if (p?.id) return { id: p.id, keptPort };
    const id = fresh(e.name ?? `${i}/${e.port}`, used);
    used.add(id);
    return { id, keptPort };
  });
}

function fresh(base: string, used: ReadonlySet<string>): string {
  if (!used.has(base)) return base;
  for (let n = 2; ; n++) if (!used.has(`${base}~${n}`)) return `${base}~${n}`;
}
