import { basename } from 'node:path';
import type { DatabaseError } from 'pg';
import { UserError } from '../errors';
import type { SqlStatement } from './sql-split';

/** A statement of a migration script failed; the message names the file, the line and PostgreSQL's error. */
export class MigrationError extends UserError {
  override name = 'MigrationError';
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
    /** SQLSTATE, under the same name as pg errors so lock-timeout retries still recognise 55P03. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export function statementError(
  err: unknown,
  path: string,
  stmt: SqlStatement,
  note?: string,
): MigrationError {
  const e = err as Partial<DatabaseError> & Error;
  let line = stmt.line;
  // `position` is a 1-based character index into the statement text we sent.
  const pos = Number(e.position);
  if (Number.isFinite(pos) && pos > 0)
    line += (stmt.sql.slice(0, pos - 1).match(/\n/g) ?? []).length;
  const parts = [`${basename(path)}:${line}: ${e.severity ?? 'ERROR'}: ${e.message}`];
  if (e.detail) parts.push(`DETAIL: ${e.detail}`);
  if (e.hint) parts.push(`HINT: ${e.hint}`);
  if (note) parts.push(note);
  return new MigrationError(parts.join('\n  '), path, line, e.code);
}
