/**
 * Is a user's query read-only? Plan SQL checks and monitoring queries run again and again while
 * a change is in flight (after the backfill, during every monitoring window); one that writes,
 * locks rows or has side effects must be refused by `plan check`, not discovered at the validate
 * stage after hours of copying. Decided on PostgreSQL's own parse tree (libpg-query), so no
 * spelling, comment or nesting trick hides a DELETE.
 */
import { loadModule, parseSync } from 'libpg-query';

await loadModule();

type Node = Record<string, unknown>;

const WRITES: Record<string, string> = {
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
};

/**
 * Functions with side effects or that take locks, by name (any schema). Not every volatile
 * function: random() and clock_timestamp() are harmless in a check.
 */
const SIDE_EFFECT_FUNCTIONS = new Set([
  'nextval',
  'setval',
  'set_config',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_notify',
  'pg_sleep',
  'pg_sleep_for',
  'pg_sleep_until',
  'pg_read_file',
  'pg_read_binary_file',
  'pg_write_file',
  'lo_import',
  'lo_export',
  'lo_create',
  'lo_unlink',
  'lo_from_bytea',
  'lo_put',
  'dblink',
  'dblink_exec',
  'txid_current',
  'pg_current_xact_id',
  'pg_drop_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_create_physical_replication_slot',
  'pg_stat_reset',
]);

/**
 * Null when `sql` is exactly one plain SELECT (or WITH … SELECT, VALUES, set operations of
 * those) that cannot change anything, else what is wrong with it and what to do.
 */
export function readOnlyQueryProblem(sql: string): string | null {
  if (sql.trim().length === 0) return 'must be a non-empty SELECT statement';
  let stmts: Array<{ stmt: Node }>;
  try {
    stmts = (parseSync(sql) as unknown as { stmts: Array<{ stmt: Node }> }).stmts;
  } catch (err) {
    return `not valid SQL (${err instanceof Error ? err.message : String(err)})`;
  }
  if (stmts.length !== 1) return 'must be exactly one statement (no semicolons between statements)';
  const root = stmts[0]!.stmt;
  if (!root.SelectStmt) {
    const type = Object.keys(root)[0]!.replace(/Stmt$/, '');
    return `must be a SELECT statement, found ${WRITES[`${type}Stmt`] ?? type}: a check only reads`;
  }
  return walk(root);
}

function walk(n: unknown): string | null {
  if (Array.isArray(n)) {
    for (const x of n) {
      const p = walk(x);
      if (p) return p;
    }
    return null;
  }
  if (n === null || typeof n !== 'object') return null;
  for (const [key, value] of Object.entries(n as Node)) {
    if (key in WRITES)
      return `contains a data-modifying ${WRITES[key]} (e.g. in a WITH clause): a check must only read; remove it`;
    if (key === 'SelectStmt' || key === 'larg' || key === 'rarg' || key === 'subquery') {
      const s = value as Node;
      if (s.intoClause)
        return 'must be a plain SELECT (SELECT … INTO creates a table): remove INTO';
      if (s.lockingClause)
        return 'must not lock rows (FOR UPDATE / FOR SHARE would block the application): remove the locking clause';
    }
    if (key === 'FuncCall') {
      const names = ((value as Node).funcname as Array<{ String?: { sval: string } }>) ?? [];
      const name = names[names.length - 1]?.String?.sval.toLowerCase();
      if (name && SIDE_EFFECT_FUNCTIONS.has(name))
        return `calls ${name}(), which changes state or takes locks: a check must only read; remove the call`;
    }
    const p = walk(value);
    if (p) return p;
  }
  return null;
}
