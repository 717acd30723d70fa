import { createHash } from 'node:crypto';

export type Side = 'old' | 'new';

/**
 * The bucket (0..99) of a key for one migration: the first 4 bytes of
 * sha256("<migration>:<key>") read as a big-endian unsigned integer, modulo 100.
 *
 * The migration name is part of the input so that each migration picks a different first 10%
 * of users (the same unlucky users are not the canaries of every change). Numbers and their
 * decimal strings land in the same bucket (42 and "42"). Any language can reproduce this.
 */
export function bucketOf(migration: string, key: string | number): number {
  const digest = createHash('sha256')
    .update(`${migration}:${String(key)}`, 'utf8')
    .digest();
  return digest.readUInt32BE(0) % 100;
}

/**
 * old or new for a key at a percent. A key goes to new when its bucket is below the percent, so
 * raising the percent only ever moves keys from old to new (never back), and lowering it only
 * moves them back.
 */
export function sideFor(migration: string, key: string | number, percent: number): Side {
  return bucketOf(migration, key) < percent ? 'new' : 'old';
}
