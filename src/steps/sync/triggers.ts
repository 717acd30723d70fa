/**
 * Two-way sync triggers of a blue-green table change.
 *
 * forward (source → target, `up` mapping) and reverse (target → source, `down` mapping) are AFTER
 * ROW triggers for INSERT, UPDATE and DELETE. INSERT and UPDATE upsert the destination row with
 * every mapped column (a trigger always carries the newest row, so it overwrites); an UPDATE that
 * changes the key first deletes the old key; DELETE deletes by key. The old key is only deleted
 * when no source row holds it any more at the end of the statement, so a statement that swaps
 * keys between rows does not lose one of them.
 *
 * Recursion guard: a transaction-local setting (set_config(..., true)) named after the plan. The
 * trigger function sets it around its own write to the other table and clears it afterwards;
 * both triggers carry `WHEN (current_setting(guard, true) IS DISTINCT FROM 'on')`, so the twin's
 * event is not even queued. The backfill sets the same guard, so its inserts never bounce back.
 * Why not pg_trigger_depth(): it cannot tell our twin from an application trigger, so an
 * application trigger that writes the source table (depth 1) would silently not be synced.
 * Clearing the guard after the write (instead of leaving it set for the transaction) keeps later
 * application writes in the same transaction synced; a failed subtransaction rolls the setting
 * back with it.
 */
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../db/ident';
import { withLockRetry, type LockRetryOptions } from '../../db/lock-timeout';
import { probe } from '../../db/probe';
import { inTransaction, withConnection as withNamedConnection } from '../../temporal/activity';
import { UserError } from '../../errors';
import type { ColumnMapping, ResolvedChange, TableRef } from '../../plan/types';
import { sqlLiteral, syncNames } from './names';
import { clearSyncDebt, debtTable, drainSyncDebt, ensureDebtTable, type DrainResult } from './debt';
import { readSwapRecord, swappedChange } from '../../swap/swap';
import { serverVersionOf } from '../../db/connect';

export type SyncDirection = 'forward' | 'reverse';

interface DirectionSpec {
  direction: SyncDirection;
  from: TableRef;
  to: TableRef;
  fromKey: string[];
  toKey: string[];
  mapping: ColumnMapping[];
  functionName: string;
  triggerName: string;
}

function directionSpec(change: ResolvedChange, direction: SyncDirection): DirectionSpec {
  const names = syncNames(change);
  if (direction === 'forward') {
    return {
      direction,
      from: change.source,
      to: change.target,
      fromKey: change.sourceKey,
      toKey: change.targetKey,
      mapping: change.up,
      functionName: names.forwardFunction,
      triggerName: names.forwardTrigger,
    };
  }
  if (!change.down)
    throw new UserError(
      `plan "${change.name}" has no down mapping: writes to the new table cannot flow back`,
    );
  return {
    direction,
    from: change.target,
    to: change.source,
    fromKey: change.targetKey,
    toKey: change.sourceKey,
    mapping: change.down,
    functionName: names.reverseFunction,
    triggerName: names.reverseTrigger,
  };
}

const qTable = (t: TableRef) => quoteQualified(t.schema, t.table);
const DOLLAR_TAG = '$cutover_sync$';

function mappedExpression(spec: DirectionSpec, column: string): string {
  const m = spec.mapping.find((c) => c.column === column);
  if (!m)
    throw new UserError(
      `${spec.direction} mapping has no expression for key column "${column}" of ${spec.to.schema}.${spec.to.table}`,
    );
  return m.expression;
}

/**
 * How long a reverse copy may wait for a lock on the old table before it records sync debt
 * instead. Far below deadlock_timeout (1 s by default), so a reverse copy can never be the
 * waiting edge that closes a cross-table cycle; the forward copy always waits.
 */
export const REVERSE_LOCK_WAIT_MS = 5;

/**
 * In the source of forward trigger functions whose DELETE records a miss as sync debt at every
 * isolation level (a delete that finds no row in the new table).
 */
export const MISSES_AS_DEBT = 'cutover: a delete that finds no row is recorded as sync debt';

/**
 * In the source of forward trigger functions in copy mode: while the backfill runs, EVERY
 * delete (and key change) of the old table is recorded as sync debt, found or not. A batch
 * takes no row locks: it may have read the row in a snapshot older than the delete and insert
 * it after the delete removed the trigger-written copy (an update synced the row ahead of the
 * cursor, then a delete found and removed it), which would leave a ghost that nobody recorded.
 * Functions without it (installed by an older version, or settled after the copy) are switched
 * to copy mode before a backfill starts (see setCopyMode).
 */
export const COPY_MODE = 'cutover: copy mode, every delete is recorded as sync debt';

/**
 * Switches the forward trigger function of `change` into or out of copy mode (COPY_MODE); a
 * CREATE OR REPLACE of the function alone, which takes no lock on the tables. Returns false when
 * no forward sync is installed. Switching INTO copy mode waits until every transaction that may
 * have run the function in its other mode has ended: one of them may have removed a row's
 * trigger-written copy without recording it, and a batch that starts before its commit could
 * resurrect it.
 */
export async function setCopyMode(
  client: pg.ClientBase,
  change: ResolvedChange,
  copying: boolean,
  { waitMs = 120_000, onWait }: { waitMs?: number; onWait?: () => void } = {},
): Promise<boolean> {
  const spec = directionSpec(change, 'forward');
  const r = await client.query<{ src: string }>(
    `SELECT p.prosrc AS src FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname = $2`,
    [spec.from.schema, spec.functionName],
  );
  const src = r.rows[0]?.src;
  if (src === undefined) return false;
  if (src.includes(COPY_MODE) === copying) return true;
  await client.query(buildSyncSql(change, 'forward', { copying }).createFunction);
  if (copying) await waitForOlderTransactions(client, waitMs, onWait);
  return true;
}

/** Waits until every transaction that had an xid when this is called has ended. */
async function waitForOlderTransactions(
  client: pg.ClientBase,
  waitMs: number,
  onWait?: () => void,
): Promise<void> {
  const horizon = await client.query<{ x: string }>(
    `SELECT txid_snapshot_xmax(txid_current_snapshot())::text AS x`,
  );
  const xmax = horizon.rows[0]!.x;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await client.query<{ done: boolean }>(
      `SELECT txid_snapshot_xmin(txid_current_snapshot()) >= $1::bigint AS done`,
      [xmax],
    );
    if (r.rows[0]!.done) return;
    if (Date.now() > deadline)
      throw new Error(
        'the sync triggers switched to copy mode, but transactions older than the switch are still open; the backfill retries',
      );
    onWait?.();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The CREATE FUNCTION and CREATE TRIGGER statements of one direction (pure; for tests too). */
export function buildSyncSql(
  change: ResolvedChange,
  direction: SyncDirection,
  /** Forward only: record every delete as debt (COPY_MODE). The default until the copy ends. */
  { copying = true }: { copying?: boolean } = {},
): { createFunction: string; createTrigger: string; dropTrigger: string } {
  const spec = directionSpec(change, direction);
  const guard = sqlLiteral(syncNames(change).guardSetting);
  for (const m of spec.mapping)
    if (m.expression.includes(DOLLAR_TAG))
      throw new UserError(`expression for "${m.column}" contains ${DOLLAR_TAG}`);

  const from = qTable(spec.from);
  const to = qTable(spec.to);
  const fromKeyOld = spec.fromKey.map((k) => `OLD.${quoteIdent(k)}`).join(', ');
  const fromKeyNew = spec.fromKey.map((k) => `NEW.${quoteIdent(k)}`).join(', ');
  const fromKeyCols = spec.fromKey.map((k) => `f.${quoteIdent(k)}`).join(', ');
  const oldKeySelect = spec.toKey
    .map((k) => `(${mappedExpression(spec, k)}) AS ${quoteIdent(k)}`)
    .join(', ');
  const keyJoin = spec.toKey.map((k) => `t.${quoteIdent(k)} = o.${quoteIdent(k)}`).join(' AND ');
  const cols = spec.mapping.map((m) => quoteIdent(m.column)).join(', ');
  const exprs = spec.mapping.map((m) => `(${m.expression})`).join(', ');
  const nonKey = spec.mapping.filter((m) => !spec.toKey.includes(m.column));
  const conflict = spec.toKey.map(quoteIdent).join(', ');
  const set = nonKey.map((m) => `${quoteIdent(m.column)} = EXCLUDED.${quoteIdent(m.column)}`);
  const onConflict = nonKey.length ? `DO UPDATE SET ${set.join(', ')}` : 'DO NOTHING';
  // Only rewrites a row that differs: used when cutover itself wrote the source row.
  const onConflictIfDifferent = nonKey.length
    ? `DO UPDATE SET ${set.join(', ')} WHERE (${nonKey.map((m) => `t.${quoteIdent(m.column)}`).join(', ')}) IS DISTINCT FROM (${nonKey.map((m) => `EXCLUDED.${quoteIdent(m.column)}`).join(', ')})`
    : 'DO NOTHING';

  // Sync debt for the row in `rec` (OLD or NEW): its key in the old and in the new table.
  const fromKeyArr = `ARRAY[${spec.fromKey.map((k) => `s.${quoteIdent(k)}::text`).join(', ')}]`;
  const toKeyArr = `ARRAY[${spec.toKey.map((k) => `(${mappedExpression(spec, k)})::text`).join(', ')}]`;
  const [oldKeyArr, newKeyArr] =
    spec.direction === 'forward' ? [fromKeyArr, toKeyArr] : [toKeyArr, fromKeyArr];
  const debt = (rec: 'OLD' | 'NEW') => `
      INSERT INTO ${debtTable} (migration, direction, old_key, new_key)
        SELECT ${sqlLiteral(change.name)}, ${sqlLiteral(spec.direction)}, ${oldKeyArr}, ${newKeyArr}
          FROM (SELECT ${rec}.*) AS s;`;
  const debtBoth = `
      IF TG_OP <> 'INSERT' THEN${debt('OLD')}
      END IF;
      IF TG_OP <> 'DELETE' THEN${debt('NEW')}
      END IF;`;
  const caught = 'serialization_failure OR deadlock_detected OR lock_not_available';

  // A DELETE that finds nothing is recorded as debt at every isolation level. Under REPEATABLE
  // READ the row may be invisible to the snapshot (committed by a backfill batch later); under
  // READ COMMITTED a backfill batch may be copying it right now, uncommitted: the backfill takes
  // no row locks (that is what lets it run at the speed of one INSERT … SELECT), so the batch
  // commits the copy after this DELETE looked. The reconciler then deletes it. In copy mode
  // (while the backfill runs) a DELETE that found the row is recorded too: a batch whose
  // snapshot still saw the row may insert it after this DELETE (see COPY_MODE). The debt grows
  // with the deletes made during the copy, not with the table.
  const copyMode = copying && spec.direction === 'forward';
  const deleteOld = `
    IF NOT EXISTS (SELECT 1 FROM ${from} AS f WHERE (${fromKeyCols}) = (${fromKeyOld})) THEN
      DELETE FROM ${to} AS t
        USING (SELECT ${oldKeySelect} FROM (SELECT OLD.*) AS s) AS o
        WHERE ${keyJoin};
${
  copyMode
    ? `${debt('OLD')}`
    : `
      GET DIAGNOSTICS cutover_rows = ROW_COUNT;
      IF cutover_rows = 0 THEN${debt('OLD')}
      END IF;`
}
    END IF;`;
  const upsertNew = (how: string) => `
    INSERT INTO ${to} AS t (${cols})
      SELECT ${exprs} FROM (SELECT NEW.*) AS s
      ON CONFLICT (${conflict}) ${how};`;
  const body = `
  IF TG_OP = 'DELETE' THEN${deleteOld}
  ELSIF TG_OP = 'UPDATE' THEN
    IF (${fromKeyOld}) IS DISTINCT FROM (${fromKeyNew}) THEN${deleteOld}
    END IF;${upsertNew(onConflict)}
  ELSE${upsertNew(onConflict)}
  END IF;`;
  const rc = `current_setting('transaction_isolation') = 'read committed'`;

  // SERIALIZABLE: every read a trigger makes (the key lookups of its DELETE and upsert) takes
  // SIREAD locks, and rw-conflicts with other serializable writers' triggers then abort
  // application transactions at commit (measured: 3-4 per 650 transactions against 0-1
  // without cutover). So the copy is left entirely to the reconciler: recording the debt
  // reads nothing, and nobody reads the debt table at SERIALIZABLE.
  const serializable = `current_setting('transaction_isolation') = 'serializable'`;
  let main: string;
  if (spec.direction === 'forward') {
    // READ COMMITTED (the common case) runs without a subtransaction: there a DML statement
    // never raises 40001, and the forward copy is allowed to wait (the reverse never does).
    main = `
  IF ${rc} THEN${body}
  ELSIF ${serializable} THEN${debtBoth}
  ELSE
    BEGIN${body}
    EXCEPTION WHEN ${caught} THEN${debtBoth}
    END;
  END IF;`;
  } else {
    // The reverse copy never waits for a lock on the old table: a writer of the old row holds
    // it and its forward copy may be waiting for the new row we hold. Debt instead; the
    // subtransaction's abort also restores lock_timeout.
    main = `
  IF ${serializable} THEN${debtBoth}
  ELSE
    BEGIN
      PERFORM set_config('lock_timeout', '${REVERSE_LOCK_WAIT_MS}ms', true);
${body}
      PERFORM set_config('lock_timeout', cutover_prev_lock_timeout, true);
    EXCEPTION WHEN ${caught} THEN${debtBoth}
    END;
  END IF;`;
  }
  // The forward trigger also fires for cutover's own writes to the old table (reverse sync,
  // reconciler): an application BEFORE trigger there (updated_at := clock_timestamp()) may have
  // changed the row, so the new table gets it too — only if it differs, which converges.
  const nested =
    spec.direction === 'forward'
      ? `
  IF cutover_prev_guard = 'on' THEN
    IF TG_OP <> 'DELETE' THEN
      BEGIN${upsertNew(onConflictIfDifferent)}
      EXCEPTION WHEN ${caught} THEN${debt('NEW')}
      END;
    END IF;
    RETURN NULL;
  END IF;`
      : '';

  const fn = quoteQualified(spec.from.schema, spec.functionName);
  const createFunction = `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql AS ${DOLLAR_TAG}
#variable_conflict use_column
DECLARE
  cutover_prev_guard text := current_setting(${guard}, true);
  cutover_rows bigint;${spec.direction === 'reverse' ? "\n  cutover_prev_lock_timeout text := current_setting('lock_timeout');" : ''}
BEGIN
  -- cutover ${spec.direction} sync of plan ${sqlLiteral(change.name)}: ${spec.from.schema}.${spec.from.table} -> ${spec.to.schema}.${spec.to.table}
  -- ${copyMode ? COPY_MODE : MISSES_AS_DEBT}${nested}
  PERFORM set_config(${guard}, 'on', true);${main}
  PERFORM set_config(${guard}, coalesce(cutover_prev_guard, ''), true);
  RETURN NULL;
END
${DOLLAR_TAG}`;
  // The reverse trigger is not even queued for cutover's own writes (no recursion); the forward
  // one is (see `nested` above) and decides itself.
  const when =
    spec.direction === 'reverse'
      ? `\n  WHEN (current_setting(${guard}, true) IS DISTINCT FROM 'on')`
      : '';
  const createTrigger = `CREATE OR REPLACE TRIGGER ${quoteIdent(spec.triggerName)}
  AFTER INSERT OR UPDATE OR DELETE ON ${from}
  FOR EACH ROW${when}
  EXECUTE FUNCTION ${fn}()`;
  const dropTrigger = `DROP TRIGGER IF EXISTS ${quoteIdent(spec.triggerName)} ON ${from}`;
  return { createFunction, createTrigger, dropTrigger };
}

/**
 * TRUNCATE on either table while the sync runs is refused (a BEFORE TRUNCATE statement trigger
 * on both tables). Why not sync it: truncating the other table needs its ACCESS EXCLUSIVE lock
 * from inside the application's transaction, which can deadlock with the backfill and with
 * writers of the other table; and a TRUNCATE is rarely meant to run during a migration.
 * cutover's own statements (guard set) pass.
 */
export function buildTruncateGuardSql(change: ResolvedChange): {
  createFunction: string;
  createTriggers: string[];
  dropTriggers: string[];
  dropFunction: string;
} {
  const names = syncNames(change);
  const guard = sqlLiteral(names.guardSetting);
  const fn = quoteQualified(change.source.schema, names.truncateFunction);
  const createFunction = `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql AS ${DOLLAR_TAG}
BEGIN
  RAISE EXCEPTION 'TRUNCATE of %.% refused: cutover migration % keeps this table in sync with its twin',
      quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME), ${sqlLiteral(JSON.stringify(change.name))}
    USING ERRCODE = 'object_in_use',
          HINT = 'Delete the rows with DELETE (synced), or finish or abort the migration first.';
END
${DOLLAR_TAG}`;
  const tables = [change.source, change.target];
  return {
    createFunction,
    createTriggers: tables.map(
      (t) => `CREATE OR REPLACE TRIGGER ${quoteIdent(names.truncateTrigger)}
  BEFORE TRUNCATE ON ${qTable(t)}
  FOR EACH STATEMENT
  WHEN (current_setting(${guard}, true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION ${fn}()`,
    ),
    dropTriggers: tables.map(
      (t) => `DROP TRIGGER IF EXISTS ${quoteIdent(names.truncateTrigger)} ON ${qTable(t)}`,
    ),
    dropFunction: `DROP FUNCTION IF EXISTS ${fn}()`,
  };
}

// ---------------------------------------------------------------------------------------------
// validation (read-only)

async function relationExists(client: pg.ClientBase, t: TableRef): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [
    qTable(t),
  ]);
  return r.rows[0]!.ok;
}

async function columnsOf(client: pg.ClientBase, t: TableRef): Promise<Set<string>> {
  const r = await client.query<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
    [qTable(t)],
  );
  return new Set(r.rows.map((x) => x.attname));
}

async function hasUniqueIndexOn(client: pg.ClientBase, t: TableRef, key: string[]) {
  const r = await client.query<{ cols: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY a.attname) AS cols
       FROM pg_index i
       JOIN LATERAL unnest(i.indkey) AS k(attnum) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
        AND i.indexprs IS NULL
      GROUP BY i.indexrelid`,
    [qTable(t)],
  );
  const want = [...key].sort().join('\u0000');
  return r.rows.some((x) => [...x.cols].sort().join('\u0000') === want);
}

/**
 * Checks one direction against the live database without changing anything: tables, key and
 * mapped columns exist, the destination has a unique index on its key (ON CONFLICT needs one),
 * and the generated upsert compiles (EXPLAIN inside a rolled-back transaction).
 */
async function validateDirection(client: pg.ClientBase, spec: DirectionSpec): Promise<string[]> {
  const problems: string[] = [];
  const label = (t: TableRef) => `${t.schema}.${t.table}`;
  for (const t of [spec.from, spec.to])
    if (!(await relationExists(client, t))) problems.push(`table ${label(t)} does not exist`);
  if (problems.length) return problems;
  const fromCols = await columnsOf(client, spec.from);
  const toCols = await columnsOf(client, spec.to);
  for (const k of spec.fromKey)
    if (!fromCols.has(k)) problems.push(`key column "${k}" is not a column of ${label(spec.from)}`);
  for (const k of spec.toKey) {
    if (!toCols.has(k)) problems.push(`key column "${k}" is not a column of ${label(spec.to)}`);
    if (!spec.mapping.some((m) => m.column === k))
      problems.push(`${spec.direction} mapping must give key column "${k}" of ${label(spec.to)}`);
  }
  for (const m of spec.mapping)
    if (!toCols.has(m.column))
      problems.push(
        `${spec.direction} mapping names "${m.column}", not a column of ${label(spec.to)}`,
      );
  if (problems.length) return problems;
  if (!(await hasUniqueIndexOn(client, spec.to, spec.toKey)))
    problems.push(
      `${label(spec.to)} needs a unique index (or primary key) on (${spec.toKey.join(', ')})`,
    );
  const cols = spec.mapping.map((m) => quoteIdent(m.column)).join(', ');
  const exprs = spec.mapping.map((m) => `(${m.expression})`).join(', ');
  const error = await probe(
    client,
    `EXPLAIN INSERT INTO ${qTable(spec.to)} (${cols}) SELECT ${exprs} FROM ${qTable(spec.from)} AS s
         ON CONFLICT (${spec.toKey.map(quoteIdent).join(', ')}) DO NOTHING`,
  );
  if (error) problems.push(`${spec.direction} mapping does not compile: ${error}`);
  return problems;
}

export interface SyncInput {
  change: ResolvedChange;
  /** 'both' (default when the plan has a down mapping) or 'forward' only. */
  directions?: 'forward' | 'both';
  lockRetry?: Partial<LockRetryOptions>;
}

function wantedDirections(input: SyncInput): SyncDirection[] {
  const dirs = input.directions ?? (input.change.down ? 'both' : 'forward');
  if (dirs === 'both' && !input.change.down)
    throw new UserError(
      `plan "${input.change.name}" has no down mapping, so only the forward sync can be installed`,
    );
  return dirs === 'both' ? ['forward', 'reverse'] : ['forward'];
}

/** Read-only check of everything syncRun would install; throws one UserError listing problems. */
export async function validateSyncWith(client: pg.ClientBase, input: SyncInput): Promise<void> {
  const problems: string[] = [];
  for (const d of wantedDirections(input))
    problems.push(...(await validateDirection(client, directionSpec(input.change, d))));
  if (problems.length)
    throw new UserError(`sync for plan "${input.change.name}": ${problems.join('; ')}`);
}

const withoutOrReplace = (create: string) => create.replace(/^CREATE OR REPLACE /, 'CREATE ');

/**
 * Statements that put a trigger in place whether or not one of its name exists. CREATE OR
 * REPLACE TRIGGER exists from PostgreSQL 14; before, DROP IF EXISTS + CREATE does the same, but
 * the DROP takes ACCESS EXCLUSIVE on the table: use it only inside a transaction that holds that
 * lock already (the swap's renames) or after checking that the trigger is there.
 */
export function replaceTriggerSql(create: string, drop: string, major: number): string[] {
  return major >= 14 ? [create] : [drop, withoutOrReplace(create)];
}

async function installWith(
  client: pg.ClientBase,
  change: ResolvedChange,
  directions: SyncDirection[],
  lockRetry?: Partial<LockRetryOptions>,
): Promise<void> {
  // CREATE OR REPLACE TRIGGER exists from PostgreSQL 14. On 13 a re-run (a retried activity)
  // drops the trigger it finds and creates it again in the same transaction, so no write goes
  // unsynced; only then, because DROP TRIGGER takes ACCESS EXCLUSIVE where CREATE takes less.
  const orReplace = (await serverVersionOf(client)).major >= 14;
  const names = syncNames(change);
  const replaceTrigger = async (
    create: string,
    drop: string,
    table: TableRef,
    trigger: string,
  ): Promise<string[]> => {
    if (orReplace) return [create];
    const r = await client.query(
      'SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2',
      [qTable(table), trigger],
    );
    return r.rowCount !== 0 ? replaceTriggerSql(create, drop, 13) : [withoutOrReplace(create)];
  };
  const statements = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const d of directions) {
      const s = buildSyncSql(change, d);
      const [table, trigger] =
        d === 'forward'
          ? [change.source, names.forwardTrigger]
          : [change.target, names.reverseTrigger];
      out.push(
        s.createFunction,
        ...(await replaceTrigger(s.createTrigger, s.dropTrigger, table, trigger)),
      );
    }
    if (directions.includes('forward')) {
      const t = buildTruncateGuardSql(change);
      out.push(t.createFunction);
      for (const [i, table] of [change.source, change.target].entries())
        out.push(
          ...(await replaceTrigger(
            t.createTriggers[i]!,
            t.dropTriggers[i]!,
            table,
            names.truncateTrigger,
          )),
        );
    }
    return out;
  };
  // The triggers write their debt there; created first, outside the trigger transaction, since
  // it is shared by every migration and never dropped.
  await ensureDebtTable(client);
  // Both triggers in one transaction: the new table never sees a state where only one
  // direction exists. CREATE TRIGGER takes SHARE ROW EXCLUSIVE, hence lock_timeout + retry.
  await withLockRetry(
    client,
    () =>
      inTransaction(client, async () => {
        for (const sql of await statements()) await client.query(sql);
      }),
    lockRetry,
  );
}

async function dropWith(
  client: pg.ClientBase,
  change: ResolvedChange,
  directions: SyncDirection[],
  lockRetry?: Partial<LockRetryOptions>,
): Promise<void> {
  const names = syncNames(change);
  const targets = directions.map((d) =>
    d === 'forward'
      ? { table: change.source, trigger: names.forwardTrigger, fn: names.forwardFunction }
      : { table: change.target, trigger: names.reverseTrigger, fn: names.reverseFunction },
  );
  const truncate = buildTruncateGuardSql(change);
  await withLockRetry(
    client,
    () =>
      inTransaction(client, async () => {
        const present = [];
        for (const t of [change.source, change.target])
          if (await relationExists(client, t)) present.push(t);
        // Writers are shut out (SHARE ROW EXCLUSIVE, as DROP TRIGGER takes anyway) before the
        // last drain, so no write can add debt between the drain and the drop.
        if (present.length)
          await client.query(
            `LOCK TABLE ${present.map(qTable).join(', ')} IN SHARE ROW EXCLUSIVE MODE`,
          );
        if (present.length === 2) await drainSyncDebt(client, change, { inTransaction: true });
        for (const t of targets) {
          if (await relationExists(client, t.table))
            await client.query(
              `DROP TRIGGER IF EXISTS ${quoteIdent(t.trigger)} ON ${qTable(t.table)}`,
            );
          await client.query(`DROP FUNCTION IF EXISTS ${quoteQualified(t.table.schema, t.fn)}()`);
        }
        if (directions.includes('forward')) {
          for (const [i, t] of [change.source, change.target].entries())
            if (await relationExists(client, t)) await client.query(truncate.dropTriggers[i]!);
          await client.query(truncate.dropFunction);
          await clearSyncDebt(client, change.name);
        }
      }),
    lockRetry,
  );
}

/** Library entry points on an open client (tests, bench, CLI). */
export async function installSync(client: pg.ClientBase, input: SyncInput): Promise<void> {
  await validateSyncWith(client, input);
  await installWith(client, input.change, wantedDirections(input), input.lockRetry);
}

export async function removeSync(client: pg.ClientBase, input: SyncInput): Promise<void> {
  await dropWith(client, input.change, ['forward', 'reverse'], input.lockRetry);
}

const withConnection = <T>(change: ResolvedChange, work: (c: pg.ClientBase) => Promise<T>) =>
  withNamedConnection(change.connection, 'cutover-sync', work);

// ---------------------------------------------------------------------------------------------
// activities

/** Read-only: would syncRun succeed? */
export async function syncValidate(input: SyncInput): Promise<void> {
  await withConnection(input.change, (c) => validateSyncWith(c, input));
}

/** Installs the forward trigger, and the reverse one unless directions is 'forward'. Idempotent. */
export async function syncRun(input: SyncInput): Promise<{ installed: SyncDirection[] }> {
  return withConnection(input.change, async (c) => {
    await installSync(c, input);
    return { installed: wantedDirections(input) };
  });
}

/** Drops both triggers and their functions; harmless when already gone (or never installed). */
export async function syncUndo(input: SyncInput): Promise<void> {
  await withConnection(input.change, (c) => removeSync(c, input));
}

/**
 * Installs only the reverse trigger (new → old). The workflow calls it before the first route
 * change when prepare installed the forward direction only; installing it earlier is also safe
 * (the backfill's writes carry the guard and never bounce back).
 */
export async function enableReverse(input: SyncInput): Promise<void> {
  await withConnection(input.change, async (c) => {
    const spec = directionSpec(input.change, 'reverse');
    const problems = await validateDirection(c, spec);
    if (problems.length) throw new UserError(`reverse sync: ${problems.join('; ')}`);
    await installWith(c, input.change, ['reverse'], input.lockRetry);
  });
}

/**
 * Settles the sync debt (keys the triggers could not copy exactly; see ./debt.ts).
 * The workflow runs it while traffic is routed, every check interval; verification and the
 * final drop of the sync drain too.
 */
export async function syncDrain(input: { change: ResolvedChange }): Promise<DrainResult> {
  return withConnection(input.change, async (c) => {
    // After the swap the reverse sync runs new → archive under the swapped names; the database's
    // swap record says which names are current (a swap-back puts the plan's names back).
    const record = await readSwapRecord(c, input.change.name);
    const change =
      record?.state === 'swapped' ? swappedChange(input.change, record.archive) : input.change;
    // The workflow drains only once every backfill range has committed: the copy is over.
    if (record?.state !== 'swapped') await setCopyMode(c, input.change, false);
    return drainSyncDebt(c, change, { timeoutMs: 20_000 });
  });
}

/** Drops only the reverse trigger (undo of enableReverse); idempotent. */
export async function disableReverse(input: SyncInput): Promise<void> {
  await withConnection(input.change, (c) =>
    dropWith(c, input.change, ['reverse'], input.lockRetry),
  );
}
