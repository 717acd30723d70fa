/**
 * Contract: drop a column or table only after a deprecation step, and only once nothing reads it.
 * Deprecation marks the object (a comment with the time) so the drop can insist that it came
 * first and that enough time passed for every deploy to stop using it. Where pg_stat_statements
 * is installed, the drop is refused while statements that name the object are still being run;
 * elsewhere the plan must carry a manual confirmation (a person checked the code and the logs).
 * The drop itself has no undo: it is a declared point of no return.
 */
import type pg from 'pg';
import { UserError } from '../errors';
import {
  assertTable,
  checkIdent,
  columnInfo,
  ddl,
  label,
  qi,
  qt,
  tableRef,
  type ExpandOptions,
  type TableRef,
} from './common';

export interface DropSpec {
  table: string;
  /** Drop this column; without it, the whole table. */
  column?: string;
  /** How long after the deprecation the drop may run (default one day). */
  minDeprecatedSeconds?: number;
  /** A person confirmed nothing reads it: required where pg_stat_statements is not installed. */
  confirmedUnused?: string;
}

const MARK = 'cutover:deprecated-at=';

function target(spec: DropSpec): { t: TableRef; what: string; commentOn: string } {
  const t = tableRef(spec.table);
  if (spec.column !== undefined) checkIdent('column', spec.column);
  return spec.column !== undefined
    ? {
        t,
        what: `column ${label(t)}.${spec.column}`,
        commentOn: `COLUMN ${qt(t)}.${qi(spec.column)}`,
      }
    : { t, what: `table ${label(t)}`, commentOn: `TABLE ${qt(t)}` };
}

async function deprecatedAt(client: pg.ClientBase, spec: DropSpec): Promise<Date | undefined> {
  const { t } = target(spec);
  const r = await client.query<{ d: string | null }>(
    spec.column !== undefined
      ? `SELECT col_description(to_regclass($1), (SELECT attnum FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2)) AS d`
      : `SELECT obj_description(to_regclass($1), 'pg_class') AS d`,
    spec.column !== undefined ? [qt(t), spec.column] : [qt(t)],
  );
  const m = r.rows[0]?.d?.match(/cutover:deprecated-at=(\S+)/);
  return m ? new Date(m[1]!) : undefined;
}

/** Deprecation: marks the object with the time, keeping any comment it had. Undo removes the mark. */
export async function runDeprecate(
  client: pg.ClientBase,
  spec: DropSpec,
  now = new Date(),
): Promise<void> {
  const { t, commentOn } = target(spec);
  await assertTable(client, t);
  if (spec.column !== undefined && !(await columnInfo(client, t, spec.column)))
    throw new UserError(`${label(t)} has no column ${spec.column}`);
  if (await deprecatedAt(client, spec)) return;
  // COMMENT takes no lock that conflicts with reads or writes of the rows.
  await client.query(`COMMENT ON ${commentOn} IS ${literal(`${MARK}${now.toISOString()}`)}`);
}

export async function undoDeprecate(client: pg.ClientBase, spec: DropSpec): Promise<void> {
  const { commentOn } = target(spec);
  if (await deprecatedAt(client, spec)) await client.query(`COMMENT ON ${commentOn} IS NULL`);
}

/** pg_stat_statements entries that name the object, when the extension is there. */
async function recentReaders(client: pg.ClientBase, spec: DropSpec): Promise<string[] | undefined> {
  const ext = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`);
  if (!ext.rows.length) return undefined;
  const name = spec.column ?? tableRef(spec.table).table;
  const r = await client.query<{ query: string }>(
    `SELECT left(query, 120) AS query FROM pg_stat_statements
      WHERE calls > 0 AND query ~* $1 AND query !~* '^\\s*(COMMENT|ALTER|DROP)\\s'
        AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 3`,
    [`\\m${name}\\M`],
  );
  return r.rows.map((row) => row.query.replace(/\s+/g, ' '));
}

export async function validateDrop(
  client: pg.ClientBase,
  spec: DropSpec,
  now = new Date(),
): Promise<void> {
  const { t, what } = target(spec);
  const gone = await client.query(`SELECT to_regclass($1) IS NULL AS g`, [qt(t)]);
  if (gone.rows[0].g && spec.column === undefined) return; // dropped by an earlier attempt
  await assertTable(client, t);
  if (spec.column !== undefined && !(await columnInfo(client, t, spec.column))) return;
  const since = await deprecatedAt(client, spec);
  if (!since)
    throw new UserError(
      `${what} was never deprecated: run a deprecate step first, deploy code that no longer uses it, then drop it`,
    );
  const minSeconds = spec.minDeprecatedSeconds ?? 86_400;
  const age = (now.getTime() - since.getTime()) / 1000;
  if (age < minSeconds)
    throw new UserError(
      `${what} was deprecated ${Math.round(age)} s ago; the drop waits until ${minSeconds} s have passed (minDeprecatedSeconds)`,
    );
  const readers = await recentReaders(client, spec);
  if (readers === undefined && !spec.confirmedUnused)
    throw new UserError(
      `pg_stat_statements is not installed, so cutover cannot see whether ${what} is still read: set confirmedUnused to who checked and how, or install pg_stat_statements`,
    );
  if (readers?.length)
    throw new UserError(
      `${what} is still used by statements pg_stat_statements has seen: ${readers.join(' | ')}; deploy code that no longer uses it (and pg_stat_statements_reset()), then drop it`,
    );
}

export async function runDrop(
  client: pg.ClientBase,
  spec: DropSpec,
  opts: ExpandOptions = {},
): Promise<void> {
  const { t } = target(spec);
  await ddl(
    client,
    t,
    spec.column !== undefined
      ? `ALTER TABLE ${qt(t)} DROP COLUMN IF EXISTS ${qi(spec.column)}`
      : `DROP TABLE IF EXISTS ${qt(t)}`,
    opts,
  );
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export interface DropReadiness {
  /** The object is gone already (an earlier attempt dropped it). */
  gone: boolean;
  /** When it was deprecated (ISO), if it was. */
  deprecatedAt: string | null;
  /** Statements pg_stat_statements saw naming it; null when the extension is not installed. */
  readers: string[] | null;
}

/**
 * The facts validateDrop judges, without the judgement: a workflow waits on them (the
 * deprecation's age with a durable timer, a missing pg_stat_statements with a person's
 * confirmation) instead of failing.
 */
export async function dropReadiness(client: pg.ClientBase, spec: DropSpec): Promise<DropReadiness> {
  const { t } = target(spec);
  const gone = await client.query(`SELECT to_regclass($1) IS NULL AS g`, [qt(t)]);
  if (gone.rows[0].g) return { gone: true, deprecatedAt: null, readers: null };
  if (spec.column !== undefined && !(await columnInfo(client, t, spec.column)))
    return { gone: true, deprecatedAt: null, readers: null };
  const since = await deprecatedAt(client, spec);
  return {
    gone: false,
    deprecatedAt: since ? since.toISOString() : null,
    readers: (await recentReaders(client, spec)) ?? null,
  };
}
