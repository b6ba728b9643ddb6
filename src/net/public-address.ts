import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Outbound requests to URLs a caller chose (a Client ID Metadata Document) must not reach the broker's
 * own network: loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local
 * and multicast addresses are refused. The check runs on the address actually connected to — a
 * `lookup` for node:http — so a name that resolves to a public address at one moment and a private one
 * the next (DNS rebinding) is judged by the one used. IP literals never go through `lookup` and are
 * checked by `literalRefused`.
 */

// One list per family: a BlockList matches IPv4 addresses against IPv6 rules too (as ::ffff:a.b.c.d),
// so the IPv4-mapped rule below would otherwise catch every IPv4 address.
const internalV4 = new BlockList();
const internalV6 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const) internalV4.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 127],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) internalV6.addSubnet(net, prefix, 'ipv6');

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

export function isInternalAddress(address: string, allowLoopback: boolean): boolean {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (allowLoopback && loopback.check(address, family)) return false;
  if (family === 'ipv4') return internalV4.check(address, 'ipv4');
  return internalV6.check(address, 'ipv6') || loopback.check(address, 'ipv6');
}

/** For a URL host that is an IP literal (`[::1]` included): is it refused? */
export function literalRefused(hostname: string, allowLoopback: boolean): boolean {
  const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  return isIP(bare) !== 0 && isInternalAddress(bare, allowLoopback);
}

class InternalAddressError extends Error {
  readonly code = 'ERR_INTERNAL_ADDRESS';
  constructor() {
    super('the host resolves to an internal address');
  }
}

/** A node:http `lookup` that resolves as usual, then refuses internal addresses. */
export function publicOnlyLookup(allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const usable = addresses.filter((a) => !isInternalAddress(a.address, allowLoopback));
      if (usable.length === 0) return callback(new InternalAddressError() as NodeJS.ErrnoException, '', 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}
