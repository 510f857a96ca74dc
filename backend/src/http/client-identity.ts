import { type BlockList, isIP } from 'node:net';
import type { AppMiddleware } from './app-state.js';

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
