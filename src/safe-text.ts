/**
 * The one place that decides what user-supplied text may be shown: every message, log line,
 * status and activity failure goes through maskSecrets, and user input is quoted with quoteInput.
 * A connection string pasted into the wrong field, or a server error that echoes one, must never
 * print its password; binary garbage must never reach a terminal or a workflow history.
 */

/** Replacement for a masked credential. */
export const MASK = '***';

// scheme://user:password@host — any scheme, so postgres://, postgresql://, redis://, https://
// and friends are all covered. The password runs up to the LAST @ before the host part, since
// unencoded @ in passwords is common in hand-written URLs.
const URL_CREDENTIALS =
  /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@'"`]*):([^\s/'"`]*)@(?=[^\s@/'"`]*(?:[/?\s'"`]|$))/gi;
// libpq key/value strings (`host=x password=secret`) and query parameters (`?password=secret`).
// Only `=`: "token: x" is ordinary prose in parser messages.
const KEY_VALUE_PASSWORD =
  /\b(password|passwd|pgpassword|sslpassword|secret|token|api[_-]?key)(\s*=\s*)('[^']*'|"[^"]*"|[^\s&;,'"]+)/gi;

/** Masks credentials in anything that looks like a connection string. */
export function maskSecrets(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:${MASK}@`)
    .replace(KEY_VALUE_PASSWORD, (_m, key: string, sep: string) => `${key}${sep}${MASK}`);
}

/**
 * Escapes everything that is not printable (control characters, lone surrogates, the BOM,
 * bidi overrides) as \xNN / \uNNNN so a terminal shows what is there instead of acting on it.
 * Newlines and tabs are escaped too unless keepNewlines (for multi-line messages we build).
 */
export function escapeNonPrintable(text: string, keepNewlines = false): string {
  // Control, format (BOM, zero-width, bidi overrides), lone surrogates, private use, line and
  // paragraph separators, and the replacement character that marks undecodable bytes.
  const bad = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Zl}\p{Zp}\ufffd]/gu;
  return text.replace(bad, (c) => {
    if (keepNewlines && (c === '\n' || c === '\t')) return c;
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    const code = c.codePointAt(0)!;
    if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
    if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, '0')}`;
    return `\\u{${code.toString(16)}}`;
  });
}

/** Longest stretch of user input a message quotes. */
export const QUOTE_MAX = 80;

/**
 * User input as it may appear in a message: credentials masked, non-printables escaped, cut to
 * `max` characters (with the full length named, so a cut is never mistaken for the value), in
 * double quotes.
 */
export function quoteInput(value: unknown, max = QUOTE_MAX): string {
  const raw = typeof value === 'string' ? value : String(JSON.stringify(value) ?? value);
  const text = escapeNonPrintable(maskSecrets(raw).replace(/[\\"]/g, '\\$&'));
  if (text.length <= max) return `"${text}"`;
  return `"${text.slice(0, max)}…" (${raw.length} characters)`;
}

/** Lines and characters per line an error message may take on screen. */
export const MESSAGE_MAX_LINES = 50;
export const MESSAGE_MAX_LINE = 400;

/**
 * A message made safe for a terminal, a log or a workflow history: masked, non-printables
 * escaped, each line and the number of lines bounded.
 */
export function safeMessage(message: string, maxLines = MESSAGE_MAX_LINES): string {
  const lines = escapeNonPrintable(maskSecrets(message), true).split('\n');
  const cut = lines
    .slice(0, maxLines)
    .map((l) => (l.length > MESSAGE_MAX_LINE ? `${l.slice(0, MESSAGE_MAX_LINE)}…` : l));
  if (lines.length > maxLines) cut.push(`  … and ${lines.length - maxLines} more line(s)`);
  return cut.join('\n');
}
