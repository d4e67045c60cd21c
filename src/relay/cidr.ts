// IPv4 and IPv6 CIDR matching for allowedSourceRanges (pure). Addresses are compared as numbers of
// their family; an IPv4-mapped IPv6 client (`::ffff:10.1.2.3`, what a dual-stack listener reports)
// matches IPv4 ranges. A bare address is a single-host range.
import { isIPv4, isIPv6 } from 'node:net';
import { RelaySpecError } from './errors';

interface Address {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
  /** The range as written. */
  text: string;
}

/** Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address; throws RelaySpecError when invalid. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = slash < 0 ? text : text.slice(0, slash);
  const addr = parseAddress(ip);
  if (!addr || ip.includes('%')) throw new RelaySpecError(`"${text}" is not a CIDR range`);
  const bits = addr.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new RelaySpecError(`"${text}" has an invalid prefix length (0-${bits})`);
    }
    prefix = Number(p);
  }
  return { family: addr.family, network: addr.value & mask(bits, prefix), prefix, text };
}

/** Whether `address` (as a socket's remoteAddress) lies in any of `ranges`; false for garbage. */
export function matchesAny(address: string, ranges: readonly Cidr[]): boolean {
  const addr = parseAddress(address);
  if (!addr) return false;
  const mapped = unmapIPv4(addr);
  return ranges.some((r) => {
    const candidate = r.family === 6 ? addr : mapped;
    if (candidate.family !== r.family) return false;
    const bits = r.family === 4 ? 32 : 128;
    return (candidate.value & mask(bits, r.prefix)) === r.network;
  });
}

function mask(bits: number, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return all ^ ((1n << BigInt(bits - prefix)) - 1n);
}

function unmapIPv4(addr: Address): Address {
  if (addr.family === 6 && addr.value >> 32n === 0xffffn) {
    return { family: 4, value: addr.value & 0xffffffffn };
  }
  return addr;
}

function parseAddress(text: string): Address | undefined {
  const ip = text.replace(/%.*$/, ''); // a zone (fe80::1%eth0) does not change the address
  if (isIPv4(ip)) return { family: 4, value: ipv4Value(ip) };
  if (!isIPv6(ip)) return undefined;
  // An embedded IPv4 tail (::ffff:10.1.2.3) is rewritten as its two 16-bit groups.
  const lastColon = ip.lastIndexOf(':');
  const tail = ip.slice(lastColon + 1);
  let groups = ip;
  if (isIPv4(tail)) {
    const v = ipv4Value(tail);
    groups = `${ip.slice(0, lastColon + 1)}${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, rest] = groups.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const words =
    rest === undefined
      ? left
      : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (words.length !== 8) return undefined;
  return { family: 6, value: words.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n) };
}

function ipv4Value(ip: string): bigint {
  return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}
