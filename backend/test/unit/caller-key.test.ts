import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { callerKeys } from '../../src/redis/caller-key.js';

describe('callerKeys', () => {
  it('names a caller by a keyed hash: stable under one key, different under another, never the plain hash', () => {
    const id = 'ip:203.0.113.9';
    const names = callerKeys('one key');
    expect(names.hash(id)).toMatch(/^[0-9a-f]{16}$/);
    expect(names.hash(id)).toBe(callerKeys('one key').hash(id));
    expect(names.hash(id)).not.toBe(callerKeys('another key').hash(id));
    // The unkeyed sha256 that an IPv4 address could be recovered from by trying all 2^32.
    expect(names.hash(id)).not.toBe(createHash('sha256').update(id).digest('hex').slice(0, 16));
    expect(names.ref({ kind: 'ip', id })).toEqual({ kind: 'ip', key: names.hash(id) });
  });

  it('gives the same names once more callers than it remembers have come and gone', () => {
    const names = callerKeys('one key');
    const fresh = callerKeys('one key');
    const first = names.hash('ip:198.51.100.1');
    for (let index = 0; index < 5000; index += 1) {
      expect(names.hash(`user:${index}`)).toBe(fresh.hash(`user:${index}`));
    }
    expect(names.hash('ip:198.51.100.1')).toBe(first);
  });
});
