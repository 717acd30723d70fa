import { createHash } from 'node:crypto';
import type { ResolvedChange } from '../../plan/types';

/** PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1). */
const MAX_IDENT_BYTES = 63;

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/**
 * A deterministic object name `<prefix>_<plan>`, cut to 63 bytes with a hash of the full name
 * appended when it would not fit, so two long plan names never collapse into one object (which
 * PostgreSQL's silent truncation would do).
 */
export function objectName(prefix: string, planName: string): string {
  const full = `${prefix}_${planName}`;
  if (Buffer.byteLength(full, 'utf8') <= MAX_IDENT_BYTES) return full;
  const suffix = `_${shortHash(full)}`;
  let head = full;
  while (Buffer.byteLength(head + suffix, 'utf8') > MAX_IDENT_BYTES) head = head.slice(0, -1);
  return head + suffix;
}

export interface SyncNames {
  forwardFunction: string;
  forwardTrigger: string;
  reverseFunction: string;
  reverseTrigger: string;
  /** BEFORE TRUNCATE statement trigger (same name on both tables) and its function. */
  truncateFunction: string;
  truncateTrigger: string;
  /**
   * Transaction-local setting that marks "this write is cutover's own copy": set while a sync
   * trigger (or the backfill) writes the other table, checked in the triggers' WHEN clause.
   * Custom setting names only allow [a-z0-9_], and are case-insensitive, hence the hash.
   */
  guardSetting: string;
}

export function syncNames(change: Pick<ResolvedChange, 'name'>): SyncNames {
  const safe = change.name
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40);
  return {
    forwardFunction: objectName('cutover_sync_fwd', change.name),
    forwardTrigger: objectName('cutover_sync_fwd', change.name),
    reverseFunction: objectName('cutover_sync_rev', change.name),
    reverseTrigger: objectName('cutover_sync_rev', change.name),
    truncateFunction: objectName('cutover_sync_trunc', change.name),
    truncateTrigger: objectName('cutover_sync_trunc', change.name),
    guardSetting: `cutover.sync_${safe}_${shortHash(change.name)}`,
  };
}

/** A SQL string literal for text we generated ourselves (names above): doubles quotes anyway. */
export function sqlLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
