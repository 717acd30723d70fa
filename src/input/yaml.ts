/**
 * YAML problems in words a plan author can act on: the library's messages are written for its
 * own developers ("Map keys must be unique") and its fixed advice would be wrong for most codes.
 */
import type { Document, LineCounter, YAMLError } from 'yaml';
import { quoteInput } from '../safe-text';

/** Aliases (`*name`) a plan may use; the yaml library's own cap is reached long before a bomb. */
export const MAX_ALIAS_COUNT = 100;

/** One YAML parse error as `line L, column C: <what is wrong>: <what to do>`. */
export function yamlErrorMessage(e: YAMLError, text: string, lines: LineCounter): string {
  const pos = lines.linePos(e.pos[0]);
  const at = `line ${pos.line}, column ${pos.col}`;
  switch (e.code) {
    case 'DUPLICATE_KEY': {
      const key = /^[^:\n]*/.exec(text.slice(e.pos[0], e.pos[0] + 80))?.[0].trim();
      return `${at}: duplicate key${key ? ` ${quoteInput(key, 40)}` : ''}: each key may appear once in a mapping; remove or rename one of them`;
    }
    case 'BAD_INDENT':
    case 'BAD_DIRECTIVE':
    case 'MISSING_CHAR':
    case 'UNEXPECTED_TOKEN':
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      return `${at}: invalid YAML (${firstLine(e.message)}): fix the indentation or quoting there`;
    case 'TAB_AS_INDENT':
      return `${at}: a tab is used for indentation: indent with spaces`;
    case 'BAD_ALIAS':
      return `${at}: invalid YAML alias or anchor (${firstLine(e.message)}): define each &anchor once, before its *alias`;
    default:
      return `${at}: invalid YAML (${firstLine(e.message)}): fix the YAML there`;
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.slice(0, 120);
}

/**
 * doc.toJS() with the alias expansion bounded: an "alias bomb" (aliases of aliases) would
 * otherwise expand to millions of nodes. Returns the data or a problem message.
 */
export function yamlToData(doc: Document): { data: unknown } | { problem: string } {
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (err) {
    if (/alias/i.test((err as Error).message)) {
      return {
        problem: `expands too many YAML aliases (more than ${MAX_ALIAS_COUNT} alias uses, a resource exhaustion pattern): write the values out instead of nesting *aliases`,
      };
    }
    throw err;
  }
}
