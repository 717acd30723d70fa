import { loadModule, parseSync, scanSync, hasSqlDetails } from 'libpg-query';
import type { RawStmt } from 'libpg-query';

/**
 * The real PostgreSQL parser (libpg-query, compiled to WASM and bundled: no network, no server).
 * The WASM module loads once per process; every call after the first is synchronous underneath.
 */
let loading: Promise<void> | undefined;

export async function ensureParser(): Promise<void> {
  loading ??= loadModule();
  await loading;
}

export interface ParsedStatement {
  raw: RawStmt;
  /** Byte offsets into the UTF-8 text; `end` excludes the terminating semicolon. */
  start: number;
  end: number;
}

export interface Comment {
  start: number;
  end: number;
  text: string;
}

export type ParseOutcome =
  | { ok: true; statements: ParsedStatement[]; comments: Comment[] }
  | { ok: false; message: string; /** 0-based code point offset, when known */ cursor?: number };

/** Call ensureParser() first. */
export function parseSql(sql: string, byteLength: number): ParseOutcome {
  let stmts: RawStmt[];
  try {
    stmts = parseSync(sql).stmts ?? [];
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const cursor = hasSqlDetails(err) ? err.sqlDetails?.cursorPosition : undefined;
    return { ok: false, message, cursor };
  }
  const statements = stmts.map((raw) => {
    // Protobuf JSON leaves out zero values: a missing location is 0 and a missing length means
    // "to the end of the text" (the last statement without a trailing semicolon).
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : byteLength;
    return { raw, start, end };
  });
  return { ok: true, statements, comments: commentsOf(sql, statements) };
}

/** The parser drops comments; the scanner keeps them (with byte offsets) for the directives. */
function commentsOf(sql: string, statements: ParsedStatement[]): Comment[] {
  try {
    return scanSync(sql)
      .tokens.filter((t) => t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT')
      .map((t) => ({ start: t.start, end: t.end, text: t.text }));
  } catch {
    // The scanner's JSON output has failed on odd input before; the text between statements
    // holds only blanks, semicolons and comments, so read the comments there by hand.
    const bytes = Buffer.from(sql, 'utf8');
    const comments: Comment[] = [];
    let gapStart = 0;
    for (const gapEnd of [...statements.map((s) => s.start), bytes.length]) {
      const gap = bytes.subarray(gapStart, gapEnd).toString('utf8');
      for (const m of gap.matchAll(/--[^\n]*|\/\*[\s\S]*?\*\//g)) {
        const start = gapStart + Buffer.byteLength(gap.slice(0, m.index), 'utf8');
        comments.push({ start, end: start + Buffer.byteLength(m[0], 'utf8'), text: m[0] });
      }
      const next = statements.find((s) => s.start === gapEnd);
      gapStart = next ? next.end : gapEnd;
    }
    return comments;
  }
}
