import type {
  AlterTableCmd,
  AlterTableStmt,
  ColumnDef,
  Constraint,
  CreateStmt,
  DropStmt,
  IndexStmt,
  Node,
  RenameStmt,
} from 'libpg-query';
import {
  SERIAL_TYPES,
  columnType,
  constraintsOf,
  isBinaryCoercible,
  keyFromParts,
  nameParts,
  notNullCheckColumn,
  tableDisplay,
  tableKey,
  typeDisplay,
  volatileCalls,
  type ColumnType,
} from './ast';
import type { RuleId } from './rules';
import type { SchemaState } from './schema-state';
import { renameColumnSuggestion, renameTableSuggestion, typeChangeSuggestion } from './suggestions';
import type { MigrationKind } from './types';

export interface FileContext {
  kind: MigrationKind;
  /** The runner wraps the whole file in one transaction (no `cutover:no-transaction`). */
  transactional: boolean;
  /** server_version_num (e.g. 150004); unknown means "a supported modern server". */
  serverVersion?: number;
  runnerSetsLockTimeout: boolean;
  /** Position of this file in the linted set, for "marked deprecated in an EARLIER file". */
  fileIndex: number;
  /** A context file (already applied): learn from it, report nothing, its tables are not new. */
  applied: boolean;
  /** Views this file creates ("schema.name"), so RENAME + CREATE VIEW old_name passes. */
  viewsCreated: Set<string>;
  lockTimeoutSet: boolean;
  lockTimeoutReported: boolean;
  /** Enum values added so far in this file's one transaction (transactional files only). */
  enumValuesAdded?: Set<string>;
}

/** Reports a finding at a byte offset (a node's location, or the statement start). */
export type Emit = (rule: RuleId, at: number, message: string, suggestion?: string) => void;

/** Runs every rule over one statement and updates the schema state with what it does. */
export function checkStatement(
  node: Node,
  stmtStart: number,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
): void {
  const at = (loc: number | undefined): number => loc ?? stmtStart;
  const requireLockTimeout = (table: string): void => {
    if (ctx.runnerSetsLockTimeout || ctx.lockTimeoutSet || ctx.lockTimeoutReported) return;
    if (state.isNew(table)) return;
    ctx.lockTimeoutReported = true;
    emit(
      'missing-lock-timeout',
      stmtStart,
      `DDL on ${table.replace(/^public\./, '')} runs without a lock_timeout (the runner's default is disabled and the file sets none before this statement)`,
    );
  };

  if (ctx.enumValuesAdded?.size && !('AlterEnumStmt' in node))
    usesNewEnumValue(node, stmtStart, ctx.enumValuesAdded, emit);

  if ('TransactionStmt' in node) {
    emit(
      'transaction-control',
      stmtStart,
      `${(node.TransactionStmt.kind ?? '').replace('TRANS_STMT_', '')} inside a migration file`,
    );
  } else if ('VariableSetStmt' in node) {
    const s = node.VariableSetStmt;
    if (s.name === 'lock_timeout') {
      const arg = s.args?.[0];
      const value =
        arg && 'A_Const' in arg ? (arg.A_Const.sval?.sval ?? arg.A_Const.ival?.ival ?? 0) : 0;
      ctx.lockTimeoutSet = s.kind === 'VAR_SET_VALUE' && String(value).trim() !== '0';
    }
  } else if ('CreateStmt' in node) {
    createTable(node.CreateStmt, ctx, state, emit, at);
  } else if ('CreateTableAsStmt' in node) {
    const rel = node.CreateTableAsStmt.into?.rel;
    if (!ctx.applied && rel) state.newTables.add(tableKey(rel));
  } else if ('ViewStmt' in node) {
    // Views are registered per file up front (see lintParsed); nothing to check here.
  } else if ('IndexStmt' in node) {
    createIndex(node.IndexStmt, stmtStart, ctx, state, emit, requireLockTimeout);
  } else if ('ReindexStmt' in node) {
    const concurrent = (node.ReindexStmt.params ?? []).some(
      (p) => 'DefElem' in p && p.DefElem.defname === 'concurrently',
    );
    if (concurrent && ctx.transactional) {
      emit(
        'concurrently-in-transaction',
        stmtStart,
        'REINDEX CONCURRENTLY inside a transactional migration',
      );
    }
    if (!concurrent) reindex(node.ReindexStmt, stmtStart, state, emit);
  } else if ('DropStmt' in node) {
    drop(node.DropStmt, stmtStart, ctx, state, emit, requireLockTimeout);
  } else if ('AlterTableStmt' in node) {
    alterTable(node.AlterTableStmt, stmtStart, ctx, state, emit, requireLockTimeout);
  } else if ('RenameStmt' in node) {
    rename(node.RenameStmt, stmtStart, ctx, state, emit, requireLockTimeout);
  } else if ('TruncateStmt' in node) {
    const t = node.TruncateStmt;
    const tables = (t.relations ?? []).flatMap((r) => ('RangeVar' in r ? [r.RangeVar] : []));
    for (const rv of tables) requireLockTimeout(tableKey(rv));
    if (t.behavior === 'DROP_CASCADE') {
      emit(
        'truncate-cascade',
        stmtStart,
        `TRUNCATE ${tables.map(tableDisplay).join(', ')} CASCADE also empties every table that references ${tables.length > 1 ? 'them' : 'it'}`,
      );
    } else {
      const existing = tables.filter((rv) => !state.isNew(tableKey(rv)));
      if (existing.length)
        emit(
          'truncate',
          stmtStart,
          `TRUNCATE ${existing.map(tableDisplay).join(', ')} locks and empties an existing table`,
        );
    }
  } else if ('VacuumStmt' in node) {
    const v = node.VacuumStmt;
    const full = (v.options ?? []).some(
      (o) => 'DefElem' in o && o.DefElem.defname === 'full' && !isFalse(o.DefElem.arg),
    );
    const rels = (v.rels ?? []).flatMap((r) =>
      'VacuumRelation' in r && r.VacuumRelation.relation ? [r.VacuumRelation.relation] : [],
    );
    if (full && (rels.length === 0 || rels.some((rv) => !state.isNew(tableKey(rv)))))
      emit(
        'vacuum-full-or-cluster',
        stmtStart,
        `VACUUM FULL ${rels.length ? rels.map(tableDisplay).join(', ') : '(every table)'} rewrites under an ACCESS EXCLUSIVE lock`,
      );
  } else if ('ClusterStmt' in node) {
    const rv = node.ClusterStmt.relation;
    if (!rv || !state.isNew(tableKey(rv)))
      emit(
        'vacuum-full-or-cluster',
        stmtStart,
        `CLUSTER ${rv ? tableDisplay(rv) : '(every clustered table)'} rewrites under an ACCESS EXCLUSIVE lock`,
      );
  } else if ('UpdateStmt' in node || 'DeleteStmt' in node) {
    const isUpdate = 'UpdateStmt' in node;
    const w = isUpdate ? node.UpdateStmt : node.DeleteStmt;
    // A down script undoing a backfill clears what the up wrote, in the runner's one
    // transaction: batching is not an option there, so it is not flagged.
    if (w.relation && !w.whereClause && ctx.kind !== 'down' && !state.isNew(tableKey(w.relation)))
      emit(
        'whole-table-write',
        stmtStart,
        `${isUpdate ? 'UPDATE' : 'DELETE FROM'} ${tableDisplay(w.relation)} without WHERE ${isUpdate ? 'rewrites' : 'deletes'} every row in one transaction`,
      );
  } else if ('AlterEnumStmt' in node) {
    const e = node.AlterEnumStmt;
    if (e.newVal !== undefined && ctx.transactional)
      (ctx.enumValuesAdded ??= new Set()).add(e.newVal);
    const old = ctx.serverVersion !== undefined && ctx.serverVersion < 120000;
    if (e.newVal !== undefined && ctx.transactional && old) {
      emit(
        'enum-value-in-transaction',
        stmtStart,
        `ALTER TYPE ${nameParts({ List: { items: e.typeName ?? [] } }).join('.')} ADD VALUE '${e.newVal}' inside a transaction fails on PostgreSQL ${Math.floor(ctx.serverVersion! / 10000)}`,
      );
    }
  } else if ('CommentStmt' in node) {
    const c = node.CommentStmt;
    if (c.comment && /^\s*deprecated\b/i.test(c.comment)) {
      const parts = nameParts(c.object);
      const fileIndex = ctx.applied ? -1 : ctx.fileIndex;
      if (c.objtype === 'OBJECT_TABLE') state.deprecated.set(keyFromParts(parts), fileIndex);
      if (c.objtype === 'OBJECT_COLUMN' && parts.length >= 2) {
        const column = parts[parts.length - 1]!;
        state.deprecated.set(`${keyFromParts(parts.slice(0, -1))}|${column}`, fileIndex);
      }
    }
  }
}

function isFalse(arg: Node | undefined): boolean {
  if (!arg) return false;
  if ('Boolean' in arg) return !arg.Boolean.boolval;
  if ('A_Const' in arg) return arg.A_Const.boolval?.boolval === false;
  if ('String' in arg) return ['false', 'off', '0'].includes(String(arg.String.sval).toLowerCase());
  return false;
}

function reindex(
  r: Extract<Node, { ReindexStmt: unknown }>['ReindexStmt'],
  stmtStart: number,
  state: SchemaState,
  emit: Emit,
): void {
  const rv = r.relation;
  let what: string;
  if (r.kind === 'REINDEX_OBJECT_TABLE' && rv) {
    if (state.isNew(tableKey(rv))) return;
    what = `table ${tableDisplay(rv)}`;
  } else if (r.kind === 'REINDEX_OBJECT_INDEX' && rv) {
    const table = state.indexTables.get(tableKey(rv));
    if (table && state.isNew(table)) return;
    what = `index ${tableDisplay(rv)}`;
  } else {
    what = `${(r.kind ?? '').replace('REINDEX_OBJECT_', '').toLowerCase()} ${r.name ?? ''}`.trim();
  }
  emit('reindex-not-concurrently', stmtStart, `REINDEX ${what} without CONCURRENTLY blocks writes`);
}

/**
 * A string constant equal to an enum value this transaction added: in practice a use of it
 * (`SET status = 'archived'`, `DEFAULT 'archived'`, `'archived'::status`), which PostgreSQL
 * refuses until the ADD VALUE commits.
 */
function usesNewEnumValue(node: Node, stmtStart: number, added: Set<string>, emit: Emit): void {
  const found = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (n === null || typeof n !== 'object') return;
    const o = n as Record<string, unknown>;
    const sval = (o.A_Const as { sval?: { sval?: string } } | undefined)?.sval?.sval;
    if (sval !== undefined && added.has(sval)) found.add(sval);
    Object.values(o).forEach(walk);
  };
  walk(node);
  for (const v of found)
    emit(
      'enum-value-used-in-transaction',
      stmtStart,
      `enum value '${v}' is used in the same transaction that adds it`,
    );
}

function typeWarnings(
  table: string,
  def: ColumnDef,
  isKey: boolean,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  const t = columnType(def.typeName);
  const where = `${table}.${def.colname}`;
  const pos = at(def.location);
  if (SERIAL_TYPES.has(t.name)) {
    emit('prefer-identity', pos, `${where} is ${t.name}; use an identity column`);
  }
  const narrowInt = ['int2', 'int4', 'serial', 'serial4', 'smallserial', 'serial2'].includes(
    t.name,
  );
  if (narrowInt && !t.array && (isKey || SERIAL_TYPES.has(t.name))) {
    emit('prefer-bigint', pos, `key column ${where} is ${typeDisplay(t)}; use bigint`);
  }
  if (t.name === 'timestamp') {
    emit('prefer-timestamptz', pos, `${where} is timestamp without time zone; use timestamptz`);
  }
  if ((t.name === 'varchar' && t.mods.length > 0) || t.name === 'bpchar') {
    emit(
      'prefer-text',
      pos,
      `${where} is ${typeDisplay(t)}; use text (with a CHECK if a limit is needed)`,
    );
  }
}

/** Columns a table-level PRIMARY KEY / FOREIGN KEY / UNIQUE names, to spot key columns. */
function keyColumns(constraints: Constraint[]): Set<string> {
  const cols = new Set<string>();
  for (const c of constraints) {
    const list =
      c.contype === 'CONSTR_PRIMARY' ? c.keys : c.contype === 'CONSTR_FOREIGN' ? c.fk_attrs : [];
    for (const n of list ?? []) if ('String' in n && n.String.sval) cols.add(n.String.sval);
  }
  return cols;
}

function isKeyColumn(def: ColumnDef, tableKeys: Set<string>): boolean {
  if (def.colname && tableKeys.has(def.colname)) return true;
  return constraintsOf(def).some((c) =>
    ['CONSTR_PRIMARY', 'CONSTR_FOREIGN', 'CONSTR_IDENTITY'].includes(c.contype ?? ''),
  );
}

function createTable(
  s: CreateStmt,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  const table = tableKey(s.relation);
  if (!ctx.applied) state.newTables.add(table);
  const elts = s.tableElts ?? [];
  const tableConstraints = elts.flatMap((n) => ('Constraint' in n ? [n.Constraint] : []));
  const keys = keyColumns(tableConstraints);
  for (const n of elts) {
    if (!('ColumnDef' in n)) continue;
    const def = n.ColumnDef;
    if (!def.colname) continue;
    state.setColumn(table, def.colname, columnType(def.typeName));
    typeWarnings(tableDisplay(s.relation), def, isKeyColumn(def, keys), emit, at);
  }
}

function createIndex(
  s: IndexStmt,
  stmtStart: number,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  requireLockTimeout: (table: string) => void,
): void {
  const table = tableKey(s.relation);
  if (s.idxname) state.indexTables.set(`${s.relation?.schemaname ?? 'public'}.${s.idxname}`, table);
  const name = s.idxname ?? '(unnamed)';
  if (s.concurrent && ctx.transactional) {
    emit(
      'concurrently-in-transaction',
      stmtStart,
      `CREATE INDEX CONCURRENTLY ${name} in a migration that runs inside a transaction (put -- cutover:no-transaction on its first line)`,
    );
  }
  if (!s.concurrent && !state.isNew(table)) {
    requireLockTimeout(table);
    emit(
      'create-index-not-concurrently',
      stmtStart,
      `CREATE ${s.unique ? 'UNIQUE ' : ''}INDEX ${name} on existing table ${tableDisplay(s.relation)} blocks its writes for the whole build`,
    );
  }
}

function drop(
  s: DropStmt,
  stmtStart: number,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  requireLockTimeout: (table: string) => void,
): void {
  const objects = (s.objects ?? []).map(nameParts);
  if (s.removeType === 'OBJECT_INDEX') {
    if (s.concurrent && ctx.transactional) {
      emit(
        'concurrently-in-transaction',
        stmtStart,
        `DROP INDEX CONCURRENTLY in a migration that runs inside a transaction (put -- cutover:no-transaction on its first line)`,
      );
    }
    for (const parts of objects) {
      const key = keyFromParts(parts);
      const table = state.indexTables.get(key);
      state.indexTables.delete(key);
      if (s.concurrent || (table !== undefined && state.isNew(table))) continue;
      if (table) requireLockTimeout(table);
      emit(
        'drop-index-not-concurrently',
        stmtStart,
        `DROP INDEX ${parts.join('.')} locks ${table ? table.replace(/^public\./, '') : 'its table'} against reads and writes`,
      );
    }
  } else if (s.removeType === 'OBJECT_TABLE') {
    for (const parts of objects) {
      const key = keyFromParts(parts);
      const marked = state.deprecated.get(key);
      const allowed =
        state.isNew(key) || ctx.kind === 'down' || (marked !== undefined && marked < ctx.fileIndex);
      requireLockTimeout(key);
      state.dropTable(key);
      if (allowed) continue;
      emit(
        'drop-table',
        stmtStart,
        `DROP TABLE ${parts.join('.')}${marked !== undefined ? ' in the same migration that marks it deprecated' : ' with no earlier deprecation marker'}`,
      );
    }
  }
}

function rename(
  s: RenameStmt,
  stmtStart: number,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  requireLockTimeout: (table: string) => void,
): void {
  const table = tableKey(s.relation);
  const shown = tableDisplay(s.relation);
  const exempt = state.isNew(table) || ctx.kind === 'down';
  requireLockTimeout(table);
  if (s.renameType === 'OBJECT_TABLE' && s.newname) {
    const to = `${s.relation?.schemaname ?? 'public'}.${s.newname}`;
    state.renameTable(table, to);
    // RENAME + CREATE VIEW old_name in the same migration is the safe form itself.
    if (exempt || ctx.viewsCreated.has(table)) return;
    emit(
      'rename-table',
      stmtStart,
      `renaming table ${shown} to ${s.newname} breaks running code that uses the old name`,
      renameTableSuggestion(shown, s.newname),
    );
  } else if (s.renameType === 'OBJECT_COLUMN' && s.relationType === 'OBJECT_TABLE') {
    const from = s.subname ?? '?';
    const to = s.newname ?? '?';
    const type = state.columnType(table, from);
    if (type) {
      state.columns.get(table)?.delete(from);
      state.setColumn(table, to, type);
    }
    if (exempt) return;
    emit(
      'rename-column',
      stmtStart,
      `renaming column ${shown}.${from} to ${to} breaks running code that uses the old name`,
      renameColumnSuggestion(shown, from, to),
    );
  }
}

function alterTable(
  s: AlterTableStmt,
  stmtStart: number,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  requireLockTimeout: (table: string) => void,
): void {
  if (s.objtype !== 'OBJECT_TABLE') return;
  const table = tableKey(s.relation);
  const shown = tableDisplay(s.relation);
  const existing = !state.isNew(table);
  const at = (loc: number | undefined): number => loc ?? stmtStart;
  if (existing) requireLockTimeout(table);
  for (const n of s.cmds ?? []) {
    if (!('AlterTableCmd' in n)) continue;
    const cmd: AlterTableCmd = n.AlterTableCmd;
    const def = cmd.def;
    switch (cmd.subtype) {
      case 'AT_AddColumn':
        if (def && 'ColumnDef' in def)
          addColumn(shown, table, def.ColumnDef, existing, ctx, state, emit, at);
        break;
      case 'AT_AddConstraint':
        if (def && 'Constraint' in def)
          addConstraint(shown, table, def.Constraint, existing, state, emit, at);
        break;
      case 'AT_ValidateConstraint': {
        const col = state.pendingNotNullChecks.get(`${table}|${cmd.name}`);
        if (col !== undefined) state.provenNotNull.add(`${table}|${col}`);
        break;
      }
      case 'AT_SetNotNull': {
        const col = cmd.name ?? '?';
        const proven = state.provenNotNull.has(`${table}|${col}`);
        const old = ctx.serverVersion !== undefined && ctx.serverVersion < 120000;
        if (existing && (!proven || old)) {
          emit(
            'set-not-null',
            stmtStart,
            proven
              ? `SET NOT NULL on ${shown}.${col} scans the table under ACCESS EXCLUSIVE before PostgreSQL 12, even with a validated CHECK`
              : `SET NOT NULL on ${shown}.${col} scans the whole table under ACCESS EXCLUSIVE: no validated CHECK (${col} IS NOT NULL) precedes it`,
          );
        }
        break;
      }
      case 'AT_AlterColumnType':
        if (def && 'ColumnDef' in def)
          alterType(shown, table, cmd.name ?? '?', def.ColumnDef, existing, state, emit, at);
        break;
      case 'AT_DropColumn': {
        const col = cmd.name ?? '?';
        const marked = state.deprecated.get(`${table}|${col}`);
        state.columns.get(table)?.delete(col);
        const allowed =
          !existing || ctx.kind === 'down' || (marked !== undefined && marked < ctx.fileIndex);
        if (!allowed) {
          emit(
            'drop-column',
            stmtStart,
            `DROP COLUMN ${shown}.${col}${marked !== undefined ? ' in the same migration that marks it deprecated' : ' with no earlier deprecation marker'}`,
          );
        }
        break;
      }
      default:
        break;
    }
  }
}

function addColumn(
  shown: string,
  table: string,
  def: ColumnDef,
  existing: boolean,
  ctx: FileContext,
  state: SchemaState,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  const col = def.colname ?? '?';
  const type = columnType(def.typeName);
  state.setColumn(table, col, type);
  const constraints = constraintsOf(def);
  typeWarnings(shown, def, isKeyColumn(def, new Set()), emit, at);
  if (!existing) return;
  const pos = at(def.location);
  const where = `${shown}.${col}`;
  const dflt = constraints.find((c) => c.contype === 'CONSTR_DEFAULT');
  const hasNullDefault =
    !dflt ||
    (dflt.raw_expr !== undefined &&
      'A_Const' in dflt.raw_expr &&
      dflt.raw_expr.A_Const.isnull === true);
  const generated = constraints.find(
    (c) => c.contype === 'CONSTR_IDENTITY' || c.contype === 'CONSTR_GENERATED',
  );
  if (
    constraints.some((c) => c.contype === 'CONSTR_NOTNULL') &&
    hasNullDefault &&
    !generated &&
    !SERIAL_TYPES.has(type.name)
  ) {
    emit(
      'add-column-not-null-without-default',
      pos,
      `ADD COLUMN ${where} NOT NULL without a DEFAULT`,
    );
  }
  const volatile = dflt ? volatileCalls(dflt.raw_expr) : [];
  const preEleven = ctx.serverVersion !== undefined && ctx.serverVersion < 110000;
  if (volatile.length > 0) {
    emit(
      'add-column-volatile-default',
      pos,
      `ADD COLUMN ${where} DEFAULT calls ${volatile.join(', ')}(), which may be volatile: the table is rewritten`,
    );
  } else if (SERIAL_TYPES.has(type.name)) {
    emit(
      'add-column-volatile-default',
      pos,
      `ADD COLUMN ${where} ${type.name} fills every row from a sequence: the table is rewritten`,
    );
  } else if (generated) {
    emit(
      'add-column-volatile-default',
      pos,
      `ADD COLUMN ${where} ${generated.contype === 'CONSTR_IDENTITY' ? 'GENERATED AS IDENTITY' : 'GENERATED ... STORED'} computes every row: the table is rewritten`,
    );
  } else if (dflt && !hasNullDefault && preEleven) {
    emit(
      'add-column-volatile-default',
      pos,
      `ADD COLUMN ${where} with a DEFAULT rewrites the table before PostgreSQL 11`,
    );
  }
  for (const c of constraints) inlineConstraint(where, c, emit, at);
}

function inlineConstraint(
  where: string,
  c: Constraint,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  if (c.contype === 'CONSTR_FOREIGN' || c.contype === 'CONSTR_CHECK') {
    emit(
      'constraint-not-valid',
      at(c.location),
      `ADD COLUMN ${where} with an inline ${c.contype === 'CONSTR_CHECK' ? 'CHECK' : 'REFERENCES'} is validated at once; add the column, then ADD CONSTRAINT ... NOT VALID`,
    );
  } else if (c.contype === 'CONSTR_UNIQUE' || c.contype === 'CONSTR_PRIMARY') {
    emit(
      'unique-without-index',
      at(c.location),
      `ADD COLUMN ${where} ${c.contype === 'CONSTR_UNIQUE' ? 'UNIQUE' : 'PRIMARY KEY'} builds an index under ACCESS EXCLUSIVE`,
    );
  }
}

function addConstraint(
  shown: string,
  table: string,
  c: Constraint,
  existing: boolean,
  state: SchemaState,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  const name = c.conname ? ` ${c.conname}` : '';
  if (c.contype === 'CONSTR_CHECK') {
    const col = notNullCheckColumn(c.raw_expr);
    if (col !== undefined) {
      if (c.skip_validation && c.conname)
        state.pendingNotNullChecks.set(`${table}|${c.conname}`, col);
      if (!c.skip_validation) state.provenNotNull.add(`${table}|${col}`);
    }
  }
  if (!existing) return;
  if ((c.contype === 'CONSTR_FOREIGN' || c.contype === 'CONSTR_CHECK') && !c.skip_validation) {
    emit(
      'constraint-not-valid',
      at(c.location),
      `ADD CONSTRAINT${name} ${c.contype === 'CONSTR_CHECK' ? 'CHECK' : 'FOREIGN KEY'} on ${shown} without NOT VALID validates every row under lock`,
    );
  }
  if (
    (c.contype === 'CONSTR_UNIQUE' ||
      c.contype === 'CONSTR_PRIMARY' ||
      c.contype === 'CONSTR_EXCLUSION') &&
    !c.indexname
  ) {
    const kind =
      c.contype === 'CONSTR_UNIQUE'
        ? 'UNIQUE'
        : c.contype === 'CONSTR_PRIMARY'
          ? 'PRIMARY KEY'
          : 'EXCLUDE';
    emit(
      'unique-without-index',
      at(c.location),
      `ADD CONSTRAINT${name} ${kind} on ${shown} builds its index under ACCESS EXCLUSIVE; build it CONCURRENTLY first and add the constraint USING INDEX`,
    );
  }
}

function alterType(
  shown: string,
  table: string,
  col: string,
  def: ColumnDef,
  existing: boolean,
  state: SchemaState,
  emit: Emit,
  at: (loc: number | undefined) => number,
): void {
  const to = columnType(def.typeName);
  const from: ColumnType | undefined = state.columnType(table, col);
  state.setColumn(table, col, to);
  if (!existing) return;
  const usesUsing = def.raw_default !== undefined;
  if (from && !usesUsing && isBinaryCoercible(from, to)) return;
  const toShown = typeDisplay(to);
  const reason = usesUsing
    ? 'with a USING expression'
    : from
      ? `from ${typeDisplay(from)} (not binary-coercible)`
      : '(its current type is not in the linted migrations, so the lint cannot prove the change binary-coercible)';
  emit(
    'alter-column-type',
    at(def.location),
    `ALTER COLUMN ${shown}.${col} TYPE ${toShown} ${reason} rewrites the table under ACCESS EXCLUSIVE`,
    typeChangeSuggestion(shown, col, toShown),
  );
}
