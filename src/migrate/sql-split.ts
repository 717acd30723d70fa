import { loadModule, parseSync } from 'libpg-query';

export interface SqlStatement {
  sql: string;
  /** 1-based line of the statement's first character in the file. */
  line: number;
}

let loaded: Promise<void> | undefined;

/** Loads the PostgreSQL parser (bundled WASM, no network) once per process. */
export function ensureParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

/**
 * Splits a script into statements with PostgreSQL's own parser, so dollar quotes, strings and
 * comments never confuse the split. Statements are sent one per round trip: that is how a
 * failing statement is named by line, and it is the only correct way to run statements that
 * refuse a transaction block (a multi-statement string runs as one implicit transaction).
 *
 * A script the parser rejects is returned whole, so the server reports the syntax error itself
 * with its position.
 */
export async function splitStatements(script: string): Promise<SqlStatement[]> {
  await ensureParser();
  let stmts: Array<{ stmt_location?: number; stmt_len?: number }>;
  try {
    stmts = parseSync(script).stmts ?? [];
  } catch {
    return script.trim() ? [{ sql: script, line: 1 }] : [];
  }
  // libpg-query reports byte offsets into the UTF-8 encoding.
  const bytes = Buffer.from(script, 'utf8');
  const out: SqlStatement[] = [];
  for (const s of stmts) {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len ? start + s.stmt_len : bytes.length;
    const raw = bytes.subarray(start, end).toString('utf8');
    // The parser's statement span starts right after the previous semicolon, so it includes
    // blank lines and comments; the reported line is that of the first real token.
    const leading = /^(?:\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/)*/.exec(raw)?.[0] ?? '';
    const sql = raw.slice(leading.length).trim();
    if (!sql) continue;
    const before = bytes.subarray(0, start).toString('utf8') + leading;
    out.push({ sql, line: before.split('\n').length });
  }
  return out;
}
