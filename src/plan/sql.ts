/**
 * Static checks of the SQL text a plan carries, with PostgreSQL's own parser (libpg-query), before
 * anything reaches the database: an expression must be exactly one expression (no `;`, no smuggled
 * `FROM`/`WHERE`), DDL must be the statements we expect on the table we expect. The database then
 * compiles what passed (see check.ts), so these checks only need to be about shape, not meaning.
 */
import { loadModule, parseSync } from 'libpg-query';
import { readOnlyQueryProblem } from '../sql/read-only';

// The parser is WebAssembly; loading it once at import keeps every check synchronous (zod refinements).
await loadModule();

type Node = Record<string, unknown>;

function parse(sql: string): {
  stmts: Array<{ stmt: Node; stmt_location?: number; stmt_len?: number }>;
} {
  return parseSync(sql) as unknown as {
    stmts: Array<{ stmt: Node; stmt_location?: number; stmt_len?: number }>;
  };
}

function syntaxMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Null when `expr` is one SQL value expression, else what is wrong with it. Parsed as the only
 * target of `SELECT (<expr>)`, so anything that escapes the parentheses shows up as extra clauses
 * or statements.
 */
export function expressionProblem(expr: string): string | null {
  if (expr.trim().length === 0) return 'must be a non-empty string';
  let tree;
  try {
    tree = parse(`SELECT (${expr})`);
  } catch (err) {
    return `not a valid SQL expression (${syntaxMessage(err)})`;
  }
  const stmt =
    tree.stmts.length === 1 ? (tree.stmts[0]!.stmt.SelectStmt as Node | undefined) : undefined;
  if (!stmt) return 'must be one SQL expression, not statements (no semicolons)';
  const keys = Object.keys(stmt).filter((k) => !['targetList', 'limitOption', 'op'].includes(k));
  const targets = stmt.targetList as unknown[] | undefined;
  if (keys.length > 0 || targets?.length !== 1)
    return 'must be a single SQL expression (no FROM, WHERE or other clauses)';
  return null;
}

/** Column names an expression refers to (unqualified or by their last name part). */
export function referencedColumns(expr: string): Set<string> {
  const found = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (n === null || typeof n !== 'object') return;
    const obj = n as Node;
    const ref = obj.ColumnRef as { fields?: Node[] } | undefined;
    if (ref?.fields) {
      const last = ref.fields[ref.fields.length - 1] as { String?: { sval: string } } | undefined;
      if (last?.String) found.add(last.String.sval);
    }
    Object.values(obj).forEach(walk);
  };
  walk(parse(`SELECT (${expr})`).stmts);
  return found;
}

/**
 * Null when `sql` is one read-only SELECT (or WITH … SELECT) statement, else what is wrong:
 * see src/sql/read-only.ts (data-modifying CTEs, SELECT INTO, row locks, side-effect calls).
 */
export function selectProblem(sql: string): string | null {
  return readOnlyQueryProblem(sql);
}

export interface DdlStatement {
  kind: 'create' | 'index' | 'alter';
  sql: string;
}

interface RangeVar {
  schemaname?: string;
  relname: string;
}

/**
 * Splits DDL text into statements and checks each acts on the target table only: the first of a
 * `ddl` block must be its CREATE TABLE, the rest (and every `alter` entry) CREATE INDEX on it or
 * ALTER TABLE of it. Returns the statements or a problem message.
 */
export function splitTargetDdl(
  sql: string,
  target: { schema: string; table: string },
  mode: 'ddl' | 'alter',
): DdlStatement[] | string {
  let tree;
  try {
    tree = parse(sql);
  } catch (err) {
    return `not valid SQL (${syntaxMessage(err)})`;
  }
  if (tree.stmts.length === 0) return 'is empty: give a SQL statement';
  const out: DdlStatement[] = [];
  for (const [i, s] of tree.stmts.entries()) {
    const start = s.stmt_location ?? 0;
    const text = sql.slice(start, s.stmt_len ? start + s.stmt_len : undefined).trim();
    const [type, body] = Object.entries(s.stmt)[0] as [string, Node];
    const where = tree.stmts.length > 1 ? `statement ${i + 1}: ` : '';
    let kind: DdlStatement['kind'];
    let rel: RangeVar | undefined;
    if (type === 'CreateStmt' && mode === 'ddl' && i === 0) {
      kind = 'create';
      rel = body.relation as RangeVar;
    } else if (type === 'IndexStmt' && (i > 0 || mode === 'alter')) {
      kind = 'index';
      rel = body.relation as RangeVar;
      if (body.concurrent)
        return `${where}drop CONCURRENTLY: secondary indexes are built concurrently after the backfill anyway`;
    } else if (type === 'AlterTableStmt' && (i > 0 || mode === 'alter')) {
      kind = 'alter';
      rel = body.relation as RangeVar;
      if (body.objtype !== 'OBJECT_TABLE') return `${where}must be ALTER TABLE on the target table`;
    } else if (mode === 'ddl' && i === 0) {
      return 'must start with CREATE TABLE <target table> (…)';
    } else {
      return `${where}only CREATE INDEX … ON <target> and ALTER TABLE <target> … are allowed here, found ${type.replace(/Stmt$/, '')}`;
    }
    if (rel.relname !== target.table || (rel.schemaname && rel.schemaname !== target.schema)) {
      const named = rel.schemaname ? `${rel.schemaname}.${rel.relname}` : rel.relname;
      return `${where}acts on "${named}", not on the target table "${target.schema}.${target.table}": name the target table`;
    }
    out.push({ kind, sql: text });
  }
  return out;
}

// Casts whose type modifier only narrows the type: without it the value passes unchanged, so
// comparing both forms shows what the cast dropped. (char(n) and bit(n) are absent: without a
// modifier they mean length 1.)
const NARROWING_CASTS = new Set([
  'varchar',
  'numeric',
  'timestamp',
  'timestamptz',
  'time',
  'timetz',
  'interval',
]);

/**
 * `expr` with the type modifiers of its narrowing casts removed (`s::varchar(5)` → `s::varchar`,
 * `x::numeric(5,2)` → `x::numeric`), or null when it has none. Evaluated side by side with
 * `expr`, it shows rows an explicit cast truncates or rounds, which PostgreSQL does silently.
 */
export function withoutNarrowingCasts(expr: string): string | null {
  const prefix = 'SELECT (';
  const sql = `${prefix}${expr}\n)`;
  const cuts: Array<[number, number]> = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (n === null || typeof n !== 'object') return;
    const cast = (n as Node).TypeCast as
      { typeName?: { names?: Array<{ String?: { sval: string } }>; typmods?: Node[] } } | undefined;
    const names = cast?.typeName?.names ?? [];
    const mods = cast?.typeName?.typmods ?? [];
    const type = names[names.length - 1]?.String?.sval;
    const locs = mods.map((m) => (m.A_Const as { location?: number } | undefined)?.location);
    if (
      type &&
      NARROWING_CASTS.has(type) &&
      mods.length > 0 &&
      locs.every((l) => l !== undefined)
    ) {
      const open = sql.lastIndexOf('(', Math.min(...(locs as number[])));
      const close = sql.indexOf(')', Math.max(...(locs as number[])));
      if (open >= prefix.length && close > open) cuts.push([open, close + 1]);
    }
    Object.values(n as Node).forEach(walk);
  };
  try {
    walk(parse(sql).stmts);
  } catch {
    return null;
  }
  if (cuts.length === 0) return null;
  let out = sql;
  for (const [a, b] of cuts.sort((x, y) => y[0] - x[0])) out = out.slice(0, a) + out.slice(b);
  return out.slice(prefix.length, out.length - 2);
}
