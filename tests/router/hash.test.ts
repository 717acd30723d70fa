import { describe, expect, it } from 'vitest';
import { bucketOf, sideFor } from '../../src/router';

const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

describe('stable hashing', () => {
  it('puts the same key on the same side every time, numbers like their strings', () => {
    for (const k of keys.slice(0, 200)) {
      expect(sideFor('m1', k, 37)).toBe(sideFor('m1', k, 37));
    }
    expect(bucketOf('m1', 42)).toBe(bucketOf('m1', '42'));
  });

  it('keeps buckets within 0..99 and matches the documented formula', () => {
    for (const k of keys.slice(0, 500)) {
      const b = bucketOf('orders', k);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(100);
    }
    // Pinned values: other languages reproduce the formula (docs/routing.md), so it must not
    // drift. Computed as uint32_be(sha256("<migration>:<key>")[0..4]) % 100.
    expect(bucketOf('orders', 'user-1')).toBe(54);
    expect(bucketOf('orders', 42)).toBe(1);
    expect(bucketOf('billing', 'alice')).toBe(43);
  });

  it('only moves keys from old to new when the percent rises', () => {
    const steps = [0, 1, 10, 25, 50, 75, 99, 100];
    for (const k of keys) {
      let wasNew = false;
      for (const p of steps) {
        const isNew = sideFor('m1', k, p) === 'new';
        if (wasNew) expect(isNew).toBe(true);
        wasNew = isNew;
      }
    }
  });

  it('sends about percent of the keys to new', () => {
    for (const p of [0, 10, 50, 90, 100]) {
      const share = keys.filter((k) => sideFor('m1', k, p) === 'new').length / keys.length;
      expect(Math.abs(share - p / 100)).toBeLessThanOrEqual(0.02);
    }
  });

  it('picks a different first 10% per migration', () => {
    const a = keys.filter((k) => sideFor('m1', k, 10) === 'new');
    const b = new Set(keys.filter((k) => sideFor('m2', k, 10) === 'new'));
    const overlap = a.filter((k) => b.has(k)).length / a.length;
    expect(overlap).toBeLessThan(0.3);
  });
});
