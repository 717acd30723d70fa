/**
 * The other way to finish: a plan whose point is the new name (`posts` → `articles`) ends with
 * the new table under its own name, and the old name stays usable for code not deployed yet as
 * an auto-updatable view over the new table until cleanup removes it.
 *
 * In ONE transaction (the swap's blocker check first; the locks taken as the swap takes them,
 * src/swap/locks.ts): lock both tables and the tables whose foreign keys point at the old one,
 * stop the forward sync and settle its debt,
 * rename the old table to its archive name, move the ownership of its serial sequences and the
 * other tables' foreign keys to the new table, create the view under the old name (owner, grants,
 * comment of the old table), recreate the reverse sync new → archive, and set the route row to
 * 100% (the new table holds every key now). The rename-back replays the record in reverse, so a
 * rollback inside the window puts the old table back under its name with every write made through
 * the view or the new name (the reverse sync carried them into the archive).
 *
 * It shares the swap's record (cutover.swaps, mode 'rename'), its blocker check and its cleanup
 * (src/swap/finish.ts). What a rename cannot carry is refused up front by `renameProblems`: the
 * old table's views, triggers and policies would stay on the archive, and a mapping that is not
 * by name could not be written through a simple view.
 */
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident';
import { isLockTimeout } from '../db/lock-timeout';
import { UserError } from '../errors';
import type { ResolvedChange, TableRef } from '../plan/types';
import { ROUTE_CHANNEL, type RouteNotice } from '../router/store';
import { drainSyncDebt } from '../steps/sync/debt';
import {
  foreignKeysIn,
  grantStatements,
  inspectDependents,
  refusals,
  relOid,
  sequenceUses,
  tableFacts,
  type Dependent,
} from './dependents';
import { lockForSwap, SwapLockTimeout, type SwapLockTry } from './locks';
import {
  commentSql,
  ensureSwapTables,
  findBlockers,
  readSwapRecord,
  renamedChange,
  writeSwapRecord,
  type SwapAttempt,
  type SwapBackAttempt,
  type SwapRecord,
} from './swap';

export { renamedChange };

export interface RenameSpec {
  /** The change with its refs as before the rename (its forward debt is drained inside). */
  change: ResolvedChange;
  /** The old table's name after the rename (same schema). */
  archive: string;
  lockTimeoutMs: number;
  blockerAgeMs?: number;
  /** Run after the locks, before the renames: drop the forward sync trigger and function. */
  stopForwardSync: string[];
  /** Run after the renames: (re)create the reverse sync new → archive. Empty: no reverse sync. */
  startReverseSync: string[];
}

export interface RenameBackSpec {
  change: ResolvedChange;
  archive: string;
  lockTimeoutMs: number;
  blockerAgeMs?: number;
  /** Run after the renames back: recreate the sync triggers as they were before the rename. */
  restoreSync: string[];
}

const qual = (t: TableRef) => quoteQualified(t.schema, t.table);

/**
 * What the rename does with each dependent of the old table; the ones it cannot carry are
 * `refused` with what to do instead (the swap can carry all of those).
 */
export async function renameDependents(
  client: ClientBase,
  source: TableRef,
  target: TableRef,
): Promise<Dependent[]> {
  const label = `${source.schema}.${source.table}`;
  const to = `${target.schema}.${target.table}`;
  const stays = (what: string) =>
    `${what} stays with the archive after a rename, so the new table's writers would bypass it: use a swap (finish: swap), or move it to ${to} yourself after the run`;
  return (await inspectDependents(client, source)).map((d): Dependent => {
    switch (d.kind) {
      case 'foreign key in':
        return {
          ...d,
          action: `re-pointed at ${to} NOT VALID inside the rename transaction, validated after it; pointed back the same way by a rename-back`,
        };
      case 'index':
        return { ...d, action: `stays with the archive; ${to} keeps its own indexes` };
      case 'view':
        return { ...d, refused: true, action: stays(`view ${d.name} reads ${label}, which`) };
      case 'trigger':
        return { ...d, refused: true, action: stays(`the application's trigger ${d.name}`) };
      case 'policy':
        return { ...d, refused: true, action: stays(`row-level security policy ${d.name}`) };
      case 'owner':
        return { ...d, action: `the view ${label} left under the old name gets the same owner` };
      case 'grant':
        return {
          ...d,
          action: `the same privileges on the view ${label}; ${to} keeps the grants of its DDL`,
        };
      case 'comment':
        return { ...d, action: `copied to the view ${label}` };
      case 'sequence':
        return {
          ...d,
          action: d.action.replace(
            / with the swap \(and back with a swap-back\)/,
            ' with the rename (and back with a rename-back)',
          ),
        };
      default:
        return d;
    }
  });
}

/** Old-table columns in order, each with whether the new table has a column of that name. */
async function oldColumns(client: ClientBase, oldOid: number, newOid: number) {
  const { rows } = await client.query<{ name: string; present: boolean }>(
    `SELECT a.attname AS name,
            EXISTS (SELECT 1 FROM pg_attribute n WHERE n.attrelid = $2 AND n.attname = a.attname
                      AND n.attnum > 0 AND NOT n.attisdropped) AS present
       FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oldOid, newOid],
  );
  return rows;
}

const byName = (m: { column: string; expression: string }) =>
  m.expression.trim() === quoteIdent(m.column);

/**
 * Read-only: why the rename would fail or lose something, found before any lock is taken (and by
 * `plan check`, before the new table exists: `planning` then checks the old columns against the
 * mapping instead of the new table's catalog). The archive is checked only when given.
 */
export async function renameProblems(
  client: ClientBase,
  change: ResolvedChange,
  archive?: string,
  planning = false,
): Promise<string[]> {
  const problems: string[] = [];
  const { source, target } = change;
  if (target.schema !== source.schema)
    problems.push(
      `the new table ${target.schema}.${target.table} is in another schema than ${source.schema}.${source.table}: the rename keeps the old name as a view beside the new table, so create the new table in ${source.schema}`,
    );
  const mapped = [...change.up, ...(change.down ?? [])].filter((m) => !byName(m));
  if (mapped.length)
    problems.push(
      `columns ${[...new Set(mapped.map((m) => m.column))].join(', ')} are mapped by an expression: the old name stays usable as a simple view over the new table, which can only pass columns through by name (a rename keeps the columns; change them with another plan, or finish with a swap)`,
    );
  const record = await readSwapRecord(client, change.name);
  if (record?.state === 'swapped' && record.archive !== archive)
    problems.push(
      `plan ${change.name} is already swapped or renamed (archive ${record.archive}) by another run: abort or finish that run first`,
    );
  if (record?.state === 'swapped' && record.archive === archive) return problems;
  const oldOid = await relOid(client, source);
  const newOid = await relOid(client, target);
  if (oldOid === null) problems.push(`table ${source.schema}.${source.table} does not exist`);
  if (newOid === null && !planning)
    problems.push(`new table ${target.schema}.${target.table} does not exist`);
  if (oldOid !== null) {
    // The plan's `up` names every target column the copy fills from a same-named source column.
    const copied = new Set(change.up.map((m) => m.column));
    const missing =
      newOid !== null
        ? (await oldColumns(client, oldOid, newOid)).filter((c) => !c.present)
        : (await oldColumns(client, oldOid, oldOid)).filter((c) => !copied.has(c.name));
    if (missing.length)
      problems.push(
        `the new table has no column ${missing.map((c) => c.name).join(', ')}: the view left under the old name must show every old column (add them to the new table, or finish with a swap)`,
      );
  }
  if (archive !== undefined && (await relOid(client, { schema: source.schema, table: archive })))
    problems.push(
      `${source.schema}.${archive} already exists, so the old table cannot be archived under that name: drop or rename it, or give the rename step another archive name`,
    );
  for (const d of refusals(await renameDependents(client, source, target)))
    problems.push(`${d.kind} ${d.name}: ${d.action}`);
  return problems;
}

/** Sets the route row inside the caller's transaction and announces it (routers follow it). */
async function setRouteInTx(
  client: ClientBase,
  migration: string,
  percent: number,
): Promise<number> {
  await client.query(
    `INSERT INTO cutover.routes (migration, percent_new, version) VALUES ($1, 0, 0)
     ON CONFLICT (migration) DO NOTHING`,
    [migration],
  );
  const before = await client.query<{ percent_new: number }>(
    `SELECT percent_new FROM cutover.routes WHERE migration = $1 FOR UPDATE`,
    [migration],
  );
  const { rows } = await client.query<{ version: string }>(
    `UPDATE cutover.routes SET percent_new = $2, swapped = false, version = version + 1,
            updated_at = now() WHERE migration = $1 RETURNING version`,
    [migration, percent],
  );
  const notice: RouteNotice = {
    migration,
    percent,
    version: Number(rows[0]!.version),
    swapped: false,
  };
  await client.query('SELECT pg_notify($1, $2)', [ROUTE_CHANNEL, JSON.stringify(notice)]);
  return before.rows[0]!.percent_new;
}

/** Tables whose foreign keys point at `oid` (they are locked with it). */
async function childTables(client: ClientBase, oid: number): Promise<TableRef[]> {
  const seen = new Map<string, TableRef>();
  for (const f of await foreignKeysIn(client, oid))
    seen.set(`${f.schema}.${f.table}`, { schema: f.schema, table: f.table });
  return [...seen.values()];
}

async function oidsOf(client: ClientBase, tables: TableRef[]): Promise<number[]> {
  return (await Promise.all(tables.map((t) => relOid(client, t)))).filter(
    (x): x is number => x !== null,
  );
}

/**
 * One attempt at the rename. Like a swap attempt: `done: false` with nothing changed when a long
 * transaction is in the way or the locks were not granted in time; UserError for states a retry
 * cannot change.
 */
export async function attemptRename(client: ClientBase, spec: RenameSpec): Promise<SwapAttempt> {
  await ensureSwapTables(client);
  const { change, archive } = spec;
  const problems = await renameProblems(client, change, archive);
  if (problems.length) throw new UserError(`rename refused: ${problems.join('; ')}`);
  const existing = await readSwapRecord(client, change.name);
  if (existing?.state === 'swapped' && existing.archive === archive)
    return { done: true, already: true, record: existing };

  const { source, target } = change;
  const oldOid = (await relOid(client, source))!;
  const newOid = (await relOid(client, target))!;
  const children = await childTables(client, oldOid);
  const oids = [oldOid, newOid, ...(await oidsOf(client, children))];
  const blockers = await findBlockers(client, oids, spec.blockerAgeMs ?? spec.lockTimeoutMs);
  if (blockers.length) return { done: false, reason: 'blocked', blockers };

  await client.query('BEGIN');
  try {
    // As the swap takes them (src/swap/locks.ts): old before new, the order the forward sync
    // takes them (the reverse sync never waits for the old table), the children as they need.
    const locks = await lockForSwap(
      client,
      { parents: [qual(source), qual(target)], children: children.map(qual) },
      { lockTimeoutMs: spec.lockTimeoutMs },
    );
    const record = await renameInLockedTransaction(client, spec, oldOid, newOid);
    await client.query('COMMIT');
    return { done: true, already: false, record, lockTries: locks.tries };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (isLockTimeout(err))
      return {
        done: false,
        reason: 'lock-timeout',
        blockers: await findBlockers(client, oids, 0),
        ...(err instanceof SwapLockTimeout ? { lockTries: err.result.tries } : {}),
      };
    throw err;
  }
}

async function renameInLockedTransaction(
  client: ClientBase,
  spec: RenameSpec,
  oldOid: number,
  newOid: number,
): Promise<SwapRecord> {
  const { change, archive } = spec;
  const { source, target } = change;
  const schema = source.schema;
  const oldName = qual(source);
  const newName = qual(target);
  // Printed while the old table still has its name: the foreign keys' and sequences' statements
  // for the way back are this text (run after the rename-back they name the old table again).
  const fks = await foreignKeysIn(client, oldOid);
  const { rows: printed } = await client.query<{ name: string }>(
    `SELECT $1::regclass::text AS name`,
    [oldOid],
  );
  const printedOld = `REFERENCES ${printed[0]!.name}(`;
  const seqs = await sequenceUses(client, oldOid);
  const facts = await tableFacts(client, oldOid);
  const grants = await grantStatements(client, oldOid, oldName);
  const columns = (await oldColumns(client, oldOid, newOid)).map((c) => quoteIdent(c.name));

  for (const sql of spec.stopForwardSync) await client.query(sql);
  // Nothing writes either table now: what the forward trigger owed is settled under the names
  // it was recorded with.
  await drainSyncDebt(client, change, { inTransaction: true });
  await client.query(`ALTER TABLE ${oldName} RENAME TO ${quoteIdent(archive)}`);

  const owned = seqs.filter((s) => s.how === 'owned');
  for (const s of owned)
    await client.query(`ALTER SEQUENCE ${s.sequence} OWNED BY ${newName}.${quoteIdent(s.column)}`);
  const sequencesBack = owned.map(
    (s) => `ALTER SEQUENCE ${s.sequence} OWNED BY ${oldName}.${quoteIdent(s.column)}`,
  );

  const foreignKeys: SwapRecord['foreignKeys'] = [];
  for (const f of fks) {
    const child = quoteQualified(f.schema, f.table);
    const def = f.definition.replace(/ NOT VALID$/, '');
    const at = def.indexOf(printedOld);
    if (at < 0)
      throw new UserError(
        `rename refused: cannot re-point foreign key ${f.schema}.${f.table}.${f.name} (${f.definition}) at ${newName}: drop it before the run and add it back after`,
      );
    const moved = `${def.slice(0, at)}REFERENCES ${newName}(${def.slice(at + printedOld.length)}`;
    const drop = `ALTER TABLE ${child} DROP CONSTRAINT ${quoteIdent(f.name)}`;
    const add = `ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(f.name)} ${moved} NOT VALID`;
    await client.query(drop);
    await client.query(add);
    foreignKeys.push({
      table: child,
      name: f.name,
      drop,
      add: `ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(f.name)} ${def} NOT VALID`,
      validate: `ALTER TABLE ${child} VALIDATE CONSTRAINT ${quoteIdent(f.name)}`,
    });
  }

  // A plain column list over one table is auto-updatable: INSERT, UPDATE, DELETE (and ON
  // CONFLICT) through the old name go straight into the new table, fire its reverse sync, and
  // columns the view does not show take the new table's defaults.
  await client.query(`CREATE VIEW ${oldName} AS SELECT ${columns.join(', ')} FROM ${newName}`);
  await client.query(`ALTER VIEW ${oldName} OWNER TO ${quoteIdent(facts.owner)}`);
  for (const sql of grants) await client.query(sql);
  if (facts.comment !== null)
    await client.query(await commentSql(client, `VIEW ${oldName}`, facts.comment));

  for (const sql of spec.startReverseSync) await client.query(sql);
  const percentBefore = await setRouteInTx(client, change.name, 100);

  const record: SwapRecord = {
    migration: change.name,
    schema,
    original: source.table,
    shadow: target.table,
    archive,
    state: 'swapped',
    mode: 'rename',
    percentBefore,
    indexRenames: [],
    foreignKeys,
    views: [],
    triggers: [],
    sequences: sequencesBack,
    identity: seqs
      .filter((s) => s.how === 'identity')
      .map((s) => ({ column: s.column, sequence: s.sequence, kind: s.identityKind ?? 'd' })),
    shadowComment: null,
    reverseSync: spec.startReverseSync.length > 0,
  };
  await writeSwapRecord(client, record);
  return record;
}

/**
 * One attempt at the rename-back (the rename's undo): the view goes, the archive gets the old
 * name again with every write the reverse sync carried, the foreign keys and sequences point at
 * it again, the sync runs as before, and the route goes back to its percent before the rename.
 * Idempotent: without a 'swapped' rename record there is nothing to do.
 */
export async function attemptRenameBack(
  client: ClientBase,
  spec: RenameBackSpec,
): Promise<SwapBackAttempt> {
  const { change, archive } = spec;
  const record = await readSwapRecord(client, change.name);
  if (!record || record.state !== 'swapped' || record.archive !== archive)
    return {
      done: true,
      already: true,
      swappedBack: record?.state === 'back' && record.archive === archive,
    };
  if (record.mode !== 'rename')
    throw new UserError(`plan ${change.name} was swapped, not renamed: undo it with a swap-back`);
  if (!record.reverseSync)
    throw new UserError(
      `plan ${change.name} was renamed without a reverse sync (no down mapping), so the archive misses the writes made since: a rename-back would lose them`,
    );
  const schema = record.schema;
  const newT = { schema, table: record.shadow };
  const arch = { schema, table: record.archive };
  const newOid = await relOid(client, newT);
  const oldOid = await relOid(client, arch);
  if (newOid === null || oldOid === null)
    throw new UserError(
      `rename-back of ${change.name}: ${newOid === null ? `${schema}.${record.shadow}` : `${schema}.${record.archive}`} is missing`,
    );
  const children = record.foreignKeys.map((f) => f.table);
  const childOids = (
    await Promise.all(
      children.map((t) =>
        client.query<{ oid: number }>(`SELECT $1::regclass::oid::int AS oid`, [t]),
      ),
    )
  ).map((r) => r.rows[0]!.oid);
  const oids = [newOid, oldOid, ...childOids];
  const blockers = await findBlockers(client, oids, spec.blockerAgeMs ?? spec.lockTimeoutMs);
  if (blockers.length) return { done: false, reason: 'blocked', blockers };

  const view = quoteQualified(schema, record.original);
  await client.query('BEGIN');
  let lockTries: SwapLockTry[] | undefined;
  try {
    // The view first: old code writing through it holds the view's lock, and the DROP VIEW below
    // must not queue for it while holding the tables.
    const viewThere = (await relOid(client, { schema, table: record.original })) !== null;
    lockTries = (
      await lockForSwap(
        client,
        { parents: [...(viewThere ? [view] : []), qual(newT), qual(arch)], children },
        { lockTimeoutMs: spec.lockTimeoutMs },
      )
    ).tries;
    // The reverse sync's debt (new → archive) is settled while the archive has its name.
    await drainSyncDebt(client, renamedChange(change, archive), { inTransaction: true });
    await client.query(`DROP VIEW IF EXISTS ${view}`);
    await client.query(`ALTER TABLE ${qual(arch)} RENAME TO ${quoteIdent(record.original)}`);
    for (const sql of record.sequences) await client.query(sql);
    for (const f of record.foreignKeys) {
      await client.query(f.drop);
      await client.query(f.add);
    }
    for (const sql of spec.restoreSync) await client.query(sql);
    await setRouteInTx(client, change.name, record.percentBefore ?? 0);
    await writeSwapRecord(client, { ...record, state: 'back' });
    await client.query('COMMIT');
    return { done: true, already: false, swappedBack: true, lockTries };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (isLockTimeout(err))
      return {
        done: false,
        reason: 'lock-timeout',
        blockers: await findBlockers(client, oids, 0),
        ...(err instanceof SwapLockTimeout ? { lockTries: err.result.tries } : {}),
      };
    throw err;
  }
}
