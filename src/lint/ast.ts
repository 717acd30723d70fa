import type { ColumnDef, Constraint, Node, RangeVar, TypeName } from 'libpg-query';

/** Small readers for libpg-query's JSON AST: names, types, constraints, default expressions. */

export function tableKey(rv: RangeVar | undefined): string {
  return `${rv?.schemaname ?? 'public'}.${rv?.relname ?? '?'}`;
}

/** Display form: the name as written (schema only when it was given). */
export function tableDisplay(rv: RangeVar | undefined): string {
  return rv?.schemaname ? `${rv.schemaname}.${rv.relname}` : (rv?.relname ?? '?');
}

/** A qualified name given as a list of String nodes (DROP TABLE, COMMENT ON, DROP INDEX). */
export function nameParts(node: Node | undefined): string[] {
  if (!node) return [];
  const items = 'List' in node ? (node.List.items ?? []) : [node];
  return items.flatMap((n) =>
    'String' in n && n.String.sval !== undefined ? [n.String.sval] : [],
  );
}

/** "public.t" key from ["t"] or ["s", "t"]. */
export function keyFromParts(parts: string[]): string {
  if (parts.length >= 2) return `${parts[parts.length - 2]}.${parts[parts.length - 1]}`;
  return `public.${parts[0] ?? '?'}`;
}

export interface ColumnType {
  /** Last part of the type name: int4, varchar, timestamptz, serial, ... */
  name: string;
  /** Type modifiers: varchar(10) → [10]; numeric(12, 2) → [12, 2]. */
  mods: number[];
  array: boolean;
}

export function columnType(tn: TypeName | undefined): ColumnType {
  const parts = (tn?.names ?? []).flatMap((n) => ('String' in n ? [n.String.sval ?? ''] : []));
  const mods = (tn?.typmods ?? []).flatMap((n) =>
    'A_Const' in n && n.A_Const.ival ? [n.A_Const.ival.ival ?? 0] : [],
  );
  return { name: parts[parts.length - 1] ?? '?', mods, array: (tn?.arrayBounds?.length ?? 0) > 0 };
}

const DISPLAY: Record<string, string> = {
  int2: 'smallint',
  int4: 'integer',
  int8: 'bigint',
  bpchar: 'char',
  float4: 'real',
  float8: 'double precision',
  bool: 'boolean',
};

export function typeDisplay(t: ColumnType): string {
  const base = DISPLAY[t.name] ?? t.name;
  return `${base}${t.mods.length ? `(${t.mods.join(', ')})` : ''}${t.array ? '[]' : ''}`;
}

/**
 * Type changes PostgreSQL performs without rewriting the table or rebuilding indexes
 * (binary-coercible, or a relaxed modifier on the same type).
 */
export function isBinaryCoercible(from: ColumnType, to: ColumnType): boolean {
  if (from.array !== to.array) return false;
  if (from.name === to.name && from.mods.join() === to.mods.join()) return true;
  const widened = (): boolean =>
    to.mods.length === 0 || (from.mods.length > 0 && to.mods[0]! >= from.mods[0]!);
  if ((from.name === 'varchar' || from.name === 'text') && to.name === 'text') return true;
  if (from.name === 'varchar' && to.name === 'varchar') return widened();
  if (from.name === 'text' && to.name === 'varchar') return to.mods.length === 0;
  if (from.name === 'varbit' && to.name === 'varbit') return widened();
  if (from.name === 'numeric' && to.name === 'numeric') {
    // Raising precision at the same scale keeps every stored value as is.
    return to.mods.length === 0 || (widened() && (to.mods[1] ?? 0) === (from.mods[1] ?? 0));
  }
  if (from.name === 'cidr' && to.name === 'inet') return true;
  return false;
}

export function constraintsOf(def: ColumnDef): Constraint[] {
  return (def.constraints ?? []).flatMap((n) => ('Constraint' in n ? [n.Constraint] : []));
}

export const SERIAL_TYPES = new Set([
  'serial',
  'serial4',
  'bigserial',
  'serial8',
  'smallserial',
  'serial2',
]);

/**
 * Functions known NOT to be volatile: a default using only these is evaluated once by
 * ADD COLUMN and stored in the catalog (PostgreSQL 11+), no table rewrite.
 */
const NON_VOLATILE_FUNCTIONS = new Set([
  'now',
  'transaction_timestamp',
  'statement_timestamp',
  'current_setting',
  'lower',
  'upper',
  'length',
  'concat',
  'coalesce',
  'jsonb_build_object',
  'json_build_object',
  'jsonb_build_array',
  'json_build_array',
  'to_jsonb',
  'to_json',
  'make_interval',
  'make_date',
  'to_timestamp',
  'to_date',
  'abs',
  'round',
  'array_fill',
]);

/** Names of functions in an expression that may be volatile, e.g. ["random"]. */
export function volatileCalls(expr: Node | undefined): string[] {
  const found: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(walk);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const rec = v as Record<string, unknown>;
    const call = rec.FuncCall as { funcname?: Node[] } | undefined;
    if (call) {
      const name = nameParts({ List: { items: call.funcname ?? [] } }).pop() ?? '?';
      if (!NON_VOLATILE_FUNCTIONS.has(name)) found.push(name);
    }
    // SQLValueFunction (CURRENT_TIMESTAMP, CURRENT_USER, ...) is stable; sub-selects are not
    // allowed in defaults; everything else is walked for nested calls.
    for (const child of Object.values(rec)) walk(child);
  };
  walk(expr);
  return found;
}

/** The column of a `col IS NOT NULL` check expression, if that is what it is. */
export function notNullCheckColumn(expr: Node | undefined): string | undefined {
  if (!expr || !('NullTest' in expr)) return undefined;
  const t = expr.NullTest;
  if (t.nulltesttype !== 'IS_NOT_NULL' || !t.arg || !('ColumnRef' in t.arg)) return undefined;
  const fields = t.arg.ColumnRef.fields ?? [];
  const last = fields[fields.length - 1];
  return last && 'String' in last ? last.String.sval : undefined;
}
