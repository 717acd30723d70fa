/**
 * The resolved form of a table change: what the data plane (shadow table, sync triggers,
 * backfill, verification) works from once a plan file has been loaded, validated and checked
 * against the live database. Plain JSON, so it can travel as a Temporal activity argument; it
 * never holds credentials (connections are referred to by name).
 */
export interface TableRef {
  schema: string;
  table: string;
}

export interface ColumnMapping {
  /** Column of the target table. */
  column: string;
  /**
   * SQL expression computing it from one source row. Source columns are referenced by their
   * quoted names, e.g. `"id"::bigint` or `split_part("name", ' ', 1)`; inside triggers the same
   * expression is evaluated against NEW.
   */
  expression: string;
}

export interface ResolvedChange {
  /** Plan name: a safe identifier, used to name triggers, functions, route rows and workflows. */
  name: string;
  /** Named connection (see src/db/connect.ts). */
  connection: string;
  source: TableRef;
  target: TableRef;
  /**
   * Unique, NOT NULL key columns on the source, in key order; `targetKey` the same columns'
   * names on the target (the mapping must carry them unchanged or re-typed, never recomputed
   * from other columns).
   */
  sourceKey: string[];
  targetKey: string[];
  /**
   * old → new: one entry per target column that the copy writes (explicit expressions, else the
   * same-named source column as `"col"`). Target columns filled by their default, identity or
   * generation expression are left out; verification compares exactly these columns.
   */
  up: ColumnMapping[];
  /**
   * new → old: one entry per source column written back (same rules as `up`), or undefined when
   * the change is not reversible (the plan is then reads-only).
   */
  down?: ColumnMapping[];
  /**
   * The plan's `mapping.lossy` reason: the mapping may change values (truncate, round, not
   * round-trip through `down`), so the pre-flight and verification do not require down(up(row))
   * to give the row back. Values the new table rejects are refused all the same.
   */
  lossy?: string;
}
