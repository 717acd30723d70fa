/**
 * What the expand/contract step kinds share on the I/O side (their library is src/expand/):
 *  - `validating`: a kind's validate runs under a savepoint inside the plan check's transaction,
 *    so a statement that fails there (a bad type, an expression that does not compile) neither
 *    aborts the check nor leaves a trace, and an error becomes a problem at the step's path;
 *  - `plannedTable`: the table as the earlier steps of the same plan will have left it (columns
 *    added, columns backfilled), as a relation the pre-flights query. A plan that adds a column,
 *    fills it and then sets it NOT NULL is proven on the values the backfill will write, before
 *    anything changes, without writing a row;
 *  - `expandActivity`: the activities' connection, with a DDL lock wait made visible (heartbeat
 *    details and the run's status say who holds the table) while it retries under lock_timeout.
 */
import type { ClientBase } from 'pg';
import { UserError } from '../errors';
import { withLockRetry } from '../db/lock-timeout';
import {
  blockersOf,
  keyColumns,
  label,
  qi,
  qt,
  tableRef,
  type ExpandOptions,
  type TableRef,
} from '../expand/common';
import { activityContext, withConnection, whileHeartbeating } from '../temporal/activity';
import { progressReporter } from '../temporal/progress';
import type { ResolvedStep } from './schemas';
import type { ValidateContext } from './validate-context';

/** Runs a library validate; its UserError (or the SQL error it hit) is the step's problem. */
export async function validating(ctx: ValidateContext, work: () => Promise<void>): Promise<void> {
  let savepoint = true;
  try {
    await ctx.client.query('SAVEPOINT cutover_step_validate');
  } catch (err) {
    if ((err as { code?: string }).code !== '25P01') throw err;
    savepoint = false;
  }
  try {
    await work();
  } catch (err) {
    const isSql = typeof (err as { code?: unknown }).code === 'string';
    if (!(err instanceof UserError) && !isSql) throw err;
    ctx.problem(ctx.path, (err as Error).message);
  } finally {
    if (savepoint) await ctx.client.query('ROLLBACK TO SAVEPOINT cutover_step_validate');
  }
}

const sameTable = (a: TableRef, b: string) => {
  const r = tableRef(b);
  return r.schema === a.schema && r.table === a.table;
};

export interface PlannedTable {
  ref: TableRef;
  /** Column names (existing and added by earlier steps). */
  columns: Set<string>;
  /** Each column's type (format_type; an added column's as its step gives it). */
  types: Map<string, string>;
  /** Columns added by earlier steps of the plan (not there yet). */
  added: Set<string>;
  /** Columns an earlier backfillColumn step fills. */
  filled: Set<string>;
  key: string[];
  /** SELECT of the table with the earlier steps' values, aliased as the table's own name. */
  relation: string;
}

/**
 * The table after the earlier expand steps of the plan: an added column holds its default (or
 * NULL) and a backfilled one its expression, evaluated over the row as the steps before that
 * backfill leave it (so an expression may read a column an earlier step adds or fills). Each
 * backfill is one more SELECT layer over the layers before it, all under the table's own name.
 */
export async function plannedTable(
  client: ClientBase,
  table: string,
  earlier: ResolvedStep[] = [],
): Promise<PlannedTable> {
  const ref = tableRef(table);
  const r = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [qt(ref)],
  );
  if (!r.rows.length) throw new UserError(`table ${label(ref)} does not exist`);
  let values = new Map(r.rows.map((c) => [c.name, { sql: qi(c.name), type: c.type }]));
  const added = new Set<string>();
  const filled = new Set<string>();
  const layer = (from: string) =>
    `(SELECT ${[...values.entries()].map(([name, v]) => `${v.sql} AS ${qi(name)}`).join(', ')} FROM ${from}) AS ${qi(ref.table)}`;
  let from = qt(ref);
  for (const step of earlier) {
    if (!('table' in step) || typeof step.table !== 'string' || !sameTable(ref, step.table))
      continue;
    if (step.kind === 'addColumn' && !values.has(step.column)) {
      values.set(step.column, {
        sql: `(${step.default ?? 'NULL'})::${step.type}`,
        type: step.type,
      });
      added.add(step.column);
    } else if (step.kind === 'backfillColumn' && values.has(step.column)) {
      // The expression reads the row as the steps so far leave it: the layer below.
      from = layer(from);
      values = new Map([...values].map(([name, v]) => [name, { sql: qi(name), type: v.type }]));
      const col = values.get(step.column)!;
      col.sql = `(${step.expression})::${col.type}`;
      filled.add(step.column);
    } else if (step.kind === 'drop' && step.column !== undefined) {
      values.delete(step.column);
    }
  }
  const key = await keyColumns(client, ref);
  return {
    ref,
    columns: new Set(values.keys()),
    types: new Map([...values].map(([name, v]) => [name, v.type])),
    added,
    filled,
    key,
    relation: layer(from),
  };
}

/**
 * Runs `work` (compiling a query, e.g. a monitoring check's) where every table the earlier steps
 * change is seen as they leave it: a temporary view under the table's name, which unqualified
 * names find first (pg_temp leads the search_path), inside a savepoint that is rolled back. A
 * table the steps cannot plan (it does not exist) is left as it is: its step says why.
 */
export async function withPlannedTables<T>(
  client: ClientBase,
  earlier: ResolvedStep[],
  work: () => Promise<T>,
): Promise<T> {
  const tables = new Set<string>();
  for (const step of earlier)
    if (
      (step.kind === 'addColumn' || step.kind === 'backfillColumn' || step.kind === 'drop') &&
      step.column !== undefined
    )
      tables.add(step.table);
  if (tables.size === 0) return work();
  await client.query('SAVEPOINT cutover_planned_tables');
  try {
    for (const table of tables) {
      await client.query('SAVEPOINT cutover_planned_table');
      try {
        const t = await plannedTable(client, table, earlier);
        await client.query(
          `CREATE TEMPORARY VIEW ${qi(t.ref.table)} AS SELECT * FROM ${t.relation}`,
        );
        await client.query('RELEASE SAVEPOINT cutover_planned_table');
      } catch (err) {
        if (!(err instanceof UserError) && typeof (err as { code?: unknown }).code !== 'string')
          throw err;
        await client.query('ROLLBACK TO SAVEPOINT cutover_planned_table');
      }
    }
    return await work();
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT cutover_planned_tables');
  }
}

/** Up to `limit` keys of the planned table's rows matching `where`, rendered for a message. */
export async function plannedOffenders(
  client: ClientBase,
  t: PlannedTable,
  where: string,
  limit = 5,
): Promise<string[]> {
  const cols = t.key.map(qi).join(', ');
  const k = t.key.length === 1 ? qi(t.key[0]!) : `ROW(${cols})`;
  const r = await client.query<{ k: string }>(
    `SELECT (${k})::text AS k FROM ${t.relation} WHERE ${where} ORDER BY ${cols} LIMIT ${limit}`,
  );
  return r.rows.map((row) => row.k);
}

export const keysText = (keys: string[], limit = 5) =>
  `${keys.join(', ')}${keys.length === limit ? ', …' : ''}`;

/** An activity's input: the plan's named connection (never a URL) and the resolved step. */
export interface StepInput<S> {
  connection: string;
  step: S;
}

/**
 * Opens the plan's connection for an expand step's activity and gives the library a lock-wait
 * reporter: each retry of a DDL statement under lock_timeout goes to the heartbeat details and
 * to the run's status ("waiting for a lock on … : pid …"), so a stall is never silent.
 */
export async function expandActivity<T>(
  connection: string,
  what: string,
  work: (client: ClientBase, opts: ExpandOptions) => Promise<T>,
): Promise<T> {
  const report = progressReporter();
  let waiting: string | null = null;
  const opts: ExpandOptions = {
    onWait: (message) => {
      waiting = message;
      activityContext()?.log.warn(message);
      report({
        activity: 'ddl',
        rowsDone: 0,
        total: null,
        rowsPerSecond: null,
        throttled: message,
      });
    },
  };
  return withConnection(connection, `cutover-${what}`, (client) =>
    // Heartbeats while a statement waits or runs (VALIDATE, CREATE INDEX CONCURRENTLY scan the
    // table), so a long one is not taken for a dead worker and cancellation reaches it.
    whileHeartbeating(
      () => ({ step: what, waiting }),
      async () => {
        const out = await work(client, opts);
        if (waiting)
          report(
            { activity: 'ddl', rowsDone: 0, total: null, rowsPerSecond: null, throttled: null },
            true,
          );
        return out;
      },
      2000,
    ),
  );
}

/**
 * The ledger of what a run's expand steps changed: one row per (plan, step, run), written in the
 * same transaction as the change (or, for what cannot run in a transaction, before it). An
 * undo acts only on a ledger row, so it never drops a column, index or constraint that was
 * there before the run, and a run killed between its change and its answer is still undone.
 */
const LEDGER = 'cutover.expand_changes';

/**
 * The workflow run the activity belongs to: a later run of a plan with the same name must not
 * take the earlier run's changes for its own (its undo would drop a column that run added).
 */
function runKey(): string {
  const ex = activityContext()?.info.workflowExecution;
  return ex ? `${ex.workflowId}/${ex.runId}` : 'library';
}

export interface StepRef {
  plan: string;
  step: string;
}

async function ensureLedger(client: ClientBase): Promise<void> {
  const r = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('${LEDGER}') IS NOT NULL AS ok`,
  );
  if (r.rows[0]!.ok) return;
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS cutover;
      CREATE TABLE IF NOT EXISTS ${LEDGER} (
        plan text NOT NULL, step text NOT NULL, run text NOT NULL, what text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (plan, step, run))`);
  } catch (err) {
    // Two workers creating it at once: the loser sees a duplicate; the table is there.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '42P07' && code !== '42P06') throw err;
  }
}

/** True when the ledger says this step of this plan changed something not yet undone. */
export async function owns(client: ClientBase, ref: StepRef): Promise<boolean> {
  const r = await client.query<{ ok: boolean }>(
    `SELECT to_regclass('${LEDGER}') IS NOT NULL AS ok`,
  );
  if (!r.rows[0]!.ok) return false;
  const row = await client.query(
    `SELECT 1 FROM ${LEDGER} WHERE plan = $1 AND step = $2 AND run = $3`,
    [ref.plan, ref.step, runKey()],
  );
  return (row.rowCount ?? 0) > 0;
}

/** Records the step's change on its own (before a statement that cannot run in a transaction). */
export async function record(client: ClientBase, ref: StepRef, what: string): Promise<void> {
  await ensureLedger(client);
  await client.query(
    `INSERT INTO ${LEDGER} (plan, step, run, what) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [ref.plan, ref.step, runKey(), what],
  );
}

export async function forget(client: ClientBase, ref: StepRef): Promise<void> {
  if (await owns(client, ref))
    await client.query(`DELETE FROM ${LEDGER} WHERE plan = $1 AND step = $2 AND run = $3`, [
      ref.plan,
      ref.step,
      runKey(),
    ]);
}

/**
 * Runs DDL statements and the ledger row in ONE transaction under lock_timeout, retried with
 * backoff while the table is held; each retry says who holds it (opts.onWait).
 */
export async function changeRecorded(
  client: ClientBase,
  t: TableRef,
  ref: StepRef,
  what: string,
  statements: string[],
  opts: ExpandOptions,
): Promise<void> {
  await ensureLedger(client);
  await withLockRetry(
    client,
    async () => {
      await client.query('BEGIN');
      try {
        for (const sql of statements) await client.query(sql);
        await client.query(
          `INSERT INTO ${LEDGER} (plan, step, run, what) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
          [ref.plan, ref.step, runKey(), what],
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    {
      ...opts.lock,
      onRetry: (attempt, waitMs) => {
        void blockersOf(client, t).then(
          (who) =>
            opts.onWait?.(
              `waiting for a lock on ${label(t)} (attempt ${attempt}, next in ${waitMs} ms): ${who}`,
            ),
          () => undefined,
        );
      },
    },
  );
}
