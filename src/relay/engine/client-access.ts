// Who may connect to a session's listeners, decided at accept from the client's source address alone:
// allowedSourceRanges (CIDRs) and allowedClientAddresses (the addresses of the pods the controller
// admits, computed on the main thread from its watch caches and sent with ensure). The relay never
// looks a client up anywhere; it only matches addresses, on node:net's BlockList.
//
// Guarantees
// - Neither list given: every client is admitted (a loopback-only listener, today's behaviour).
// - Only allowedSourceRanges: a client inside one of the ranges is admitted.
// - allowedClientAddresses given (even empty): a client is admitted when its address is one of them or
//   lies inside allowedSourceRanges; an empty list with no ranges admits nobody.
// - An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`, what a dual-stack listener reports) matches the
//   IPv4 address, as it does for ranges.
import * as net from 'node:net';
import { RelaySpecError } from '../errors';
import { SourceRanges } from './source-ranges';
import type { ClientRule } from '../types';

export class ClientAccess {
  private readonly ranges: SourceRanges | undefined;
  private readonly clients: net.BlockList | undefined;

  /** Throws RelaySpecError on an invalid range or address. */
  constructor(
    readonly allowedSourceRanges: readonly string[] | undefined,
    readonly allowedClientAddresses: readonly string[] | undefined,
  ) {
    this.ranges = allowedSourceRanges?.length ? new SourceRanges(allowedSourceRanges) : undefined;
    if (allowedClientAddresses) {
      const list = new net.BlockList();
      for (const a of allowedClientAddresses) {
        if (net.isIPv4(a)) list.addAddress(a, 'ipv4');
        else if (net.isIPv6(a) && !a.includes('%')) list.addAddress(a, 'ipv6');
        else throw new RelaySpecError(`allowed client address "${a}" is not an IP address`);
      }
      this.clients = list;
    }
  }

  /** Whether `this` was built from the same lists (so a session can keep it instead of a copy). */
  same(ranges: readonly string[] | undefined, addresses: readonly string[] | undefined): boolean {
    return sameList(this.allowedSourceRanges, ranges) && sameList(this.allowedClientAddresses, addresses);
  }

  /**
   * undefined when `address` (a socket's remoteAddress) may connect; otherwise the rule that refused
   * it: `clients` when the client list was in force, else `sourceRanges`.
   */
  refuses(address: string): ClientRule | undefined {
    if (!this.ranges && !this.clients) return undefined;
    if (this.ranges?.allows(address)) return undefined;
    if (!this.clients) return 'sourceRanges';
    const ip = address.replace(/%.*$/, '');
    const family = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) ? 'ipv6' : undefined;
    return family && this.clients.check(ip, family) ? undefined : 'clients';
  }
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
