// allowedSourceRanges: which client addresses may connect, on node:net's BlockList (the standard
// library's CIDR matcher; nothing here compares address bits by hand). An IPv4-mapped IPv6 client
// (`::ffff:10.1.2.3`, what a dual-stack listener reports) matches IPv4 ranges; a bare address is a
// single-host range; `::/0` admits every client, IPv4 ones too (BlockList reads them as
// IPv4-mapped); a zone (`fe80::1%eth0`) does not change the client's address.
import * as net from 'node:net';
import { RelaySpecError } from '../errors';

export class SourceRanges {
  private readonly list = new net.BlockList();

  /** Parses `10.0.0.0/8`, `2001:db8::/32` or bare addresses; throws RelaySpecError on the first invalid one. */
  constructor(readonly ranges: readonly string[]) {
    for (const text of ranges) {
      const slash = text.indexOf('/');
      const ip = slash < 0 ? text : text.slice(0, slash);
      const family = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) && !ip.includes('%') ? 'ipv6' : undefined;
      if (!family) throw new RelaySpecError(`"${text}" is not a CIDR range`);
      const bits = family === 'ipv4' ? 32 : 128;
      const p = slash < 0 ? String(bits) : text.slice(slash + 1);
      if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
        throw new RelaySpecError(`"${text}" has an invalid prefix length (0-${bits})`);
      }
      this.list.addSubnet(ip, Number(p), family);
    }
  }

  /** Whether `address` (a socket's remoteAddress) lies in any of the ranges; false for garbage. */
  allows(address: string): boolean {
    const ip = address.replace(/%.*$/, '');
    if (net.isIPv4(ip)) return this.list.check(ip, 'ipv4');
    if (net.isIPv6(ip)) return this.list.check(ip, 'ipv6');
    return false;
  }
}
