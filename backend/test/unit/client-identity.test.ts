import { describe, expect, it } from 'vitest';
import { parseTrustedProxies } from '../../src/config.js';
import { clientAddress } from '../../src/http/client-identity.js';

const loopback = parseTrustedProxies('loopback');

describe('parseTrustedProxies', () => {
  it('understands names, addresses and CIDRs of both families', () => {
    const list = parseTrustedProxies('loopback, 10.1.0.0/16, 192.0.2.7, 2001:db8::/32');
    for (const [address, type] of [
      ['127.0.0.1', 'ipv4'],
      ['::1', 'ipv6'],
      ['10.1.200.3', 'ipv4'],
      ['192.0.2.7', 'ipv4'],
      ['2001:db8::42', 'ipv6'],
    ] as const) {
      expect(list.check(address, type), address).toBe(true);
    }
    for (const [address, type] of [
      ['10.2.0.1', 'ipv4'],
      ['192.0.2.8', 'ipv4'],
      ['8.8.8.8', 'ipv4'],
      ['2001:db9::1', 'ipv6'],
    ] as const) {
      expect(list.check(address, type), address).toBe(false);
    }
  });

  it('"private" covers the RFC 1918 and ULA ranges only', () => {
    const list = parseTrustedProxies('private');
    expect(list.check('172.20.0.5', 'ipv4')).toBe(true);
    expect(list.check('fd00::1', 'ipv6')).toBe(true);
    expect(list.check('172.32.0.1', 'ipv4')).toBe(false);
    expect(list.check('127.0.0.1', 'ipv4')).toBe(false);
  });

  it('an empty list trusts nobody', () => {
    expect(parseTrustedProxies('').check('127.0.0.1', 'ipv4')).toBe(false);
  });

  it.each(['localhost', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/abc', '10.0.0.0/ 8', '::1/129', '1.2.3.4/-1'])(
    'refuses %j instead of trusting a wrong range',
    (spec) => {
      expect(() => parseTrustedProxies(spec)).toThrow(/^TRUSTED_PROXIES: /);
    },
  );
});

describe('clientAddress', () => {
  it('ignores X-Forwarded-For from an untrusted peer (a forged header)', () => {
    expect(clientAddress('203.0.113.9', '1.2.3.4', loopback)).toBe('203.0.113.9');
    expect(clientAddress('203.0.113.9', '127.0.0.1', loopback)).toBe('203.0.113.9');
  });

  it('uses the peer when a trusted proxy sent no header', () => {
    expect(clientAddress('127.0.0.1', undefined, loopback)).toBe('127.0.0.1');
  });

  it('believes a trusted proxy, and strips the IPv4-mapped IPv6 form of the peer', () => {
    expect(clientAddress('::ffff:127.0.0.1', '198.51.100.4', loopback)).toBe('198.51.100.4');
    expect(clientAddress('::ffff:203.0.113.9', undefined, loopback)).toBe('203.0.113.9');
  });

  it('takes the right-most untrusted hop, so a client cannot prepend an identity', () => {
    // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real address.
    expect(clientAddress('127.0.0.1', '6.6.6.6, 198.51.100.4', loopback)).toBe('198.51.100.4');
    // Two trusted proxies in a row are skipped.
    const chain = parseTrustedProxies('loopback,private');
    expect(clientAddress('127.0.0.1', '6.6.6.6, 198.51.100.4, 10.0.0.2, 172.16.0.3', chain)).toBe('198.51.100.4');
    // Only loopback trusted: the private hop is the client as far as we can tell.
    expect(clientAddress('127.0.0.1', '198.51.100.4, 10.0.0.2', loopback)).toBe('10.0.0.2');
  });

  it('stops at a malformed hop instead of believing what lies left of it', () => {
    expect(clientAddress('127.0.0.1', '6.6.6.6, not-an-ip', loopback)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', '6.6.6.6, garbage, 127.0.0.2', loopback)).toBe('127.0.0.2');
  });

  it('falls back to the left-most hop when every hop is trusted', () => {
    expect(clientAddress('127.0.0.1', '127.0.0.5, 127.0.0.6', loopback)).toBe('127.0.0.5');
  });

  it('handles IPv6 hops', () => {
    expect(clientAddress('::1', '2001:db8::7', loopback)).toBe('2001:db8::7');
  });
});
