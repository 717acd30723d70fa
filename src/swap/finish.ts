/**
 * The new table before and after the swap: what it must carry before it takes traffic (the old
 * table's own foreign keys, its sequences), and the end of the rollback window (cleanup: the
 * point of no return) and the archive's drop.
 */
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import { withLockRetry, type LockRetryOptions } from '../db/lock-timeout';
import type { ResolvedChange, TableRef } from '../plan/types';
import { clearSyncDebt, drainSyncDebt } from '../steps/sync/debt';
import { ownConstraints, relOid, sequenceUses } from './dependents';
import { bridgeViewOf, newTableOf, readSwapRecord, type SwapRecord } from './swap';

async function inTx(client: ClientBase, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await work();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Makes the new table draw from the old table's sequences (serial, identity or shared), so an
 * insert into it (routed at 10%, or after the swap) never takes a value the old table already
 * used. An identity the new table got from LIKE has its own sequence starting at 1: it is
 * dropped for a default on the old sequence (cleanup makes the column an identity again).
 * Idempotent; returns the columns changed.
 */
export async function alignSequences(
  client: ClientBase,
  original: TableRef,
  shadow: TableRef,
): Promise<string[]> {
  const oldOid = await relOid(client, original);
  const newOid = await relOid(client, shadow);
  if (oldOid === null || newOid === null) return [];
  const changed: string[] = [];
  for (const s of await sequenceUses(client, oldOid)) {
    const { rows } = await client.query<{ identity: string; def: string | null }>(
      `SELECT a.attidentity::text AS identity, pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped`,
      [newOid, s.column],
    );
    const col = rows[0];
    if (!col) continue;
    const { rows: want } = await client.query<{ def: string }>(
      `SELECT format('nextval(%L::regclass)', $1::regclass::text) AS def`,
      [s.sequence],
    );
    if (col.identity === '' && col.def === want[0]!.def) continue;
    const table = quoteQualified(shadow.schema, shadow.table);
    if (col.identity !== '')
      await client.query(`ALTER TABLE ${table} ALTER COLUMN ${quoteIdent(s.column)} DROP IDENTITY`);
    // DDL takes no bind parameters: format(%L) quotes the sequence name server-side.
    const { rows: sql } = await client.query<{ sql: string }>(
      `SELECT format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT nextval(%L::regclass)', $1::text, $2::text, $3::text) AS sql`,
      [table, s.column, s.sequence],
    );
    await client.query(sql[0]!.sql);
    changed.push(s.column);
  }
  return changed;
}

/**
 * Before the swap: the old table's own outgoing foreign keys (which `LIKE` does not copy) are
 * added to the new table NOT VALID (a short SHARE ROW EXCLUSIVE lock, no scan; validated after
 * the swap), and the sequences aligned. Idempotent.
 */
export async function prepareNewTable(
  client: ClientBase,
  original: TableRef,
  shadow: TableRef,
  lock: Partial<LockRetryOptions> = {},
): Promise<{ foreignKeys: string[]; sequences: string[] }> {
  const oldOid = await relOid(client, original);
  const newOid = await relOid(client, shadow);
  if (oldOid === null || newOid === null) return { foreignKeys: [], sequences: [] };
  const have = new Set((await ownConstraints(client, newOid)).map((c) => c.name));
  const added: string[] = [];
  for (const c of await ownConstraints(client, oldOid)) {
    if (c.type !== 'f' || c.selfReference || have.has(c.name)) continue;
    await withLockRetry(
      client,
      () =>
        client.query(
          `ALTER TABLE ${quoteQualified(shadow.schema, shadow.table)} ADD CONSTRAINT ${quoteIdent(c.name)} ${c.definition.replace(/ NOT VALID$/, '')} NOT VALID`,
        ),
      lock,
    );
    added.push(c.name);
  }
  let sequences: string[] = [];
  await withLockRetry(
    client,
    () =>
      inTx(client, async () => {
        sequences = await alignSequences(client, original, shadow);
      }),
    lock,
  );
  return { foreignKeys: added, sequences };
}

export interface FinishSpec {
  migration: string;
  /** The change with its refs as after the swap or rename (archive = old, the new table's name). */
  swapped: ResolvedChange;
  /** Drops what is left of the sync: the reverse trigger, the TRUNCATE guard, their functions. */
  dropSync: string[];
}

/**
 * Cleanup after a swap or a rename, the point of no return, in one transaction: the last sync
 * debt is settled and the rest of the sync goes (SQL from the caller), the view under the name
 * the application no longer uses goes (the temporary name after a swap, the old one after a rename),
 * and identity columns the new table drew from the archive's identity sequence become
 * identities of their own, continuing after its last value, so the archive can later be
 * dropped. Idempotent: a 'finished' record returns at once.
 */
export async function finishSwap(
  client: ClientBase,
  spec: FinishSpec,
  lock: Partial<LockRetryOptions> = {},
): Promise<SwapRecord | undefined> {
  const { migration } = spec;
  const record = await readSwapRecord(client, migration);
  if (!record || record.state !== 'swapped') return record;
  const table = quoteQualified(record.schema, newTableOf(record));
  const archive = quoteQualified(record.schema, record.archive);
  await withLockRetry(
    client,
    () =>
      inTx(client, async () => {
        // The view first, then the table, the order in which a write through the view takes
        // them: the DROP VIEW below then never queues for the view while holding the table,
        // which could close a cycle with that write (and abort it as a deadlock).
        const view = quoteQualified(record.schema, bridgeViewOf(record));
        const { rows: hasView } = await client.query<{ ok: boolean }>(
          `SELECT to_regclass($1) IS NOT NULL AS ok`,
          [view],
        );
        await client.query(
          `LOCK TABLE ${hasView[0]!.ok ? `${view}, ` : ''}${table} IN ACCESS EXCLUSIVE MODE`,
        );
        // The archive's TRUNCATE guard goes too (DROP TRIGGER's lock); nobody writes it now.
        const { rows: present } = await client.query<{ ok: boolean }>(
          `SELECT to_regclass($1) IS NOT NULL AS ok`,
          [archive],
        );
        if (present[0]!.ok) {
          await client.query(`LOCK TABLE ${archive} IN SHARE ROW EXCLUSIVE MODE`);
          // Writes made before the lock that the reverse trigger could not copy exactly.
          await drainSyncDebt(client, spec.swapped, { inTransaction: true });
        }
        for (const sql of spec.dropSync) await client.query(sql);
        await clearSyncDebt(client, migration);
        // After a rename this is the old name: code that still uses it stops working here.
        await client.query(`DROP VIEW IF EXISTS ${view}`);
        for (const id of record.identity) {
          const { rows } = await client.query<{ next: string }>(
            `SELECT coalesce(pg_sequence_last_value($1::regclass) + 1,
                             (SELECT seqstart FROM pg_sequence WHERE seqrelid = $1::regclass))::text AS next`,
            [id.sequence],
          );
          const col = quoteIdent(id.column);
          await client.query(
            `ALTER TABLE ${table} ALTER COLUMN ${col} DROP DEFAULT, ALTER COLUMN ${col} ADD GENERATED ${id.kind === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY (START WITH ${BigInt(rows[0]?.next ?? '1').toString()})`,
          );
        }
        await client.query(
          `UPDATE cutover.swaps SET state = 'finished', record = jsonb_set(record, '{state}', '"finished"'), updated_at = now() WHERE migration = $1`,
          [migration],
        );
      }),
    lock,
  );
  return { ...record, state: 'finished' };
}

/** Drops the archive of a finished swap (after the retention period). Idempotent. */
export async function dropArchive(
  client: ClientBase,
  migration: string,
  lock: Partial<LockRetryOptions> = {},
): Promise<string | undefined> {
  const record = await readSwapRecord(client, migration);
  if (!record || record.state !== 'finished') return undefined;
  const archive = quoteQualified(record.schema, record.archive);
  await withLockRetry(client, () => client.query(`DROP TABLE IF EXISTS ${archive}`), lock);
  return `${record.schema}.${record.archive}`;
}
