/**
 * Identifier handling. Every identifier that reaches SQL text goes through quoteIdent; values
 * never do (they are always bind parameters).
 */

/** Quotes one identifier for PostgreSQL, doubling embedded quotes. */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\u0000')) throw new Error('SQL identifier contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a possibly schema-qualified name given as parts, e.g. ['public', 'users']. */
export function quoteQualified(...parts: string[]): string {
  return parts.map(quoteIdent).join('.');
}

const SAFE_IDENT = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * True for identifiers we accept from user input (plans, config). Quoting would make anything
 * safe, but names with quotes, semicolons or spaces in a plan are almost always a mistake or an
 * attack, so they are rejected up front with a clear message.
 */
export function isSafeIdent(name: string): boolean {
  return SAFE_IDENT.test(name);
}

/** Splits "schema.table" (or "table", defaulting to public) into its parts. */
export function parseQualifiedName(
  name: string,
  defaultSchema = 'public',
): { schema: string; name: string } {
  const parts = name.split('.');
  if (parts.length === 1) return { schema: defaultSchema, name: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, name: parts[1]! };
  throw new Error(`"${name}" is not a valid table name (expected table or schema.table)`);
}
