import { BlockList, isIP } from 'node:net';
import type { AppMiddleware } from './app-state.js';

const NAMED_RANGES: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/**
 * Builds the set of proxies whose X-Forwarded-For we believe, from a comma
 * list of addresses, CIDRs and the names "loopback" and "private".
 * Throws on an entry that is none of these.
 */
export function parseTrustedProxies(spec: string): BlockList {
  const list = new BlockList();
  for (const entry of spec
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    for (const item of NAMED_RANGES[entry] ?? [entry]) {
      const [address, prefix] = item.split('/') as [string, string | undefined];
      const family = isIP(address);
      if (family === 0) {
        throw new Error(`TRUSTED_PROXIES: "${entry}" is not an address, a CIDR, "loopback" or "private"`);
      }
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) {
        list.addAddress(address, type);
        continue;
      }
      // Number('') is 0: "10.0.0.0/" must not become 0.0.0.0/0 and trust every peer.
      const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
      if (!(bits <= (family === 6 ? 128 : 32))) {
        throw new Error(`TRUSTED_PROXIES: "${entry}" has an invalid prefix length`);
      }
      list.addSubnet(address, bits, type);
    }
  }
  return list;
}

function normalise(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function isTrusted(trusted: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The client address: the socket peer, unless the peer is a trusted proxy; then
 * the right-most X-Forwarded-For entry that is not itself a trusted proxy, so a
 * client cannot choose its identity by sending the header itself.
 */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: BlockList): string {
  let address = normalise(peer);
  if (!forwardedFor || !isTrusted(trusted, address)) {
    return address;
  }
  const hops = forwardedFor
    .split(',')
    .map((hop) => normalise(hop.trim()))
    .filter(Boolean);
  for (let index = hops.length - 1; index >= 0; index -= 1) {
    const hop = hops[index] as string;
    if (isIP(hop) === 0) {
      return address;
    }
    address = hop;
    if (!isTrusted(trusted, hop)) {
      return hop;
    }
  }
  return address;
}

/** Sets ctx.state.client and ctx.state.caller to the client IP; a Bearer token later makes the caller its user. */
export function clientIdentity(options: { trustedProxies: BlockList }): AppMiddleware {
  return async function clientIdentityMiddleware(ctx, next) {
    const peer = ctx.req.socket.remoteAddress ?? 'unknown';
    ctx.state.client = {
      kind: 'ip',
      id: `ip:${clientAddress(peer, ctx.get('X-Forwarded-For') || undefined, options.trustedProxies)}`,
    };
    ctx.state.caller = ctx.state.client;
    await next();
  };
}
