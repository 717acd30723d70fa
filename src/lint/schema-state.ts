import type { ColumnType } from './ast';

/**
 * What the lint has learned from the migrations it has read so far. "New" tables were created
 * by a migration in the linted set (not yet deployed), so locking them hurts nobody; tables from
 * context files (already applied) or never seen count as existing, busy tables.
 */
export class SchemaState {
  /** Tables created by the linted set, by "schema.table". */
  readonly newTables = new Set<string>();
  /** Column types of tables whose CREATE TABLE the lint has read (linted set or context). */
  readonly columns = new Map<string, Map<string, ColumnType>>();
  /** Index "schema.name" → its table key. */
  readonly indexTables = new Map<string, string>();
  /** "table|constraint" → column, for CHECK (col IS NOT NULL) NOT VALID not yet validated. */
  readonly pendingNotNullChecks = new Map<string, string>();
  /** "table|column" with a validated CHECK (col IS NOT NULL). */
  readonly provenNotNull = new Set<string>();
  /** "table" or "table|column" → index of the file that marked it deprecated. */
  readonly deprecated = new Map<string, number>();

  isNew(table: string): boolean {
    return this.newTables.has(table);
  }

  setColumn(table: string, column: string, type: ColumnType): void {
    let cols = this.columns.get(table);
    if (!cols) this.columns.set(table, (cols = new Map()));
    cols.set(column, type);
  }

  columnType(table: string, column: string): ColumnType | undefined {
    return this.columns.get(table)?.get(column);
  }

  dropTable(table: string): void {
    this.newTables.delete(table);
    this.columns.delete(table);
    for (const [idx, t] of this.indexTables) if (t === table) this.indexTables.delete(idx);
  }

  renameTable(from: string, to: string): void {
    if (this.newTables.delete(from)) this.newTables.add(to);
    const cols = this.columns.get(from);
    if (cols) {
      this.columns.delete(from);
      this.columns.set(to, cols);
    }
    for (const [idx, t] of this.indexTables) if (t === from) this.indexTables.set(idx, to);
  }

  /** A copy to lint a down script against, so its drops do not leak into later files. */
  clone(): SchemaState {
    const c = new SchemaState();
    for (const t of this.newTables) c.newTables.add(t);
    for (const [t, cols] of this.columns) c.columns.set(t, new Map(cols));
    for (const [k, v] of this.indexTables) c.indexTables.set(k, v);
    for (const [k, v] of this.pendingNotNullChecks) c.pendingNotNullChecks.set(k, v);
    for (const k of this.provenNotNull) c.provenNotNull.add(k);
    for (const [k, v] of this.deprecated) c.deprecated.set(k, v);
    return c;
  }
}
