/**
 * Reading the files users hand to cutover (plan files, migration scripts): size-limited, text
 * only, BOM stripped. The limits make a mistaken or hostile input fail at once with the limit
 * named, instead of parsing for minutes; they are documented in README.md ("Input limits").
 */
import { readFileSync, statSync } from 'node:fs';
import { UserError } from '../errors';
import { quoteInput } from '../safe-text';

/** Largest plan file accepted: real plans are a few KB; 1 MiB leaves room for huge mappings. */
export const PLAN_FILE_MAX_BYTES = 1024 * 1024;
/** Largest migration script accepted: data belongs in COPY/backups, not in migration files. */
export const MIGRATION_FILE_MAX_BYTES = 10 * 1024 * 1024;

const BOM = '\ufeff';

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

export interface InputFileKind {
  /** e.g. "plan file", "migration file" */
  what: string;
  maxBytes: number;
  /** What to do about a file that is too large. */
  tooLargeHint: string;
  /** What a missing file usually means. */
  missingHint: string;
}

export const planFileKind: InputFileKind = {
  what: 'plan file',
  maxBytes: PLAN_FILE_MAX_BYTES,
  tooLargeHint: 'a plan describes one table change; map columns by name instead of listing them',
  missingHint: 'check the path (plans/ holds examples)',
};

export const migrationFileKind: InputFileKind = {
  what: 'migration file',
  maxBytes: MIGRATION_FILE_MAX_BYTES,
  tooLargeHint: 'split it into several migrations, or load bulk data with COPY outside migrations',
  missingHint: 'check the migrations directory',
};

/** True when `buf` is not UTF-8 text: NUL bytes, invalid sequences, or mostly control bytes. */
export function isBinary(buf: Buffer): boolean {
  if (buf.includes(0)) return true;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return true;
  }
  let control = 0;
  for (const b of buf.subarray(0, 8192)) if (b < 0x20 && b !== 9 && b !== 10 && b !== 13) control++;
  return control > 0 && control / Math.min(buf.length, 8192) > 0.05;
}

/** Removes a leading UTF-8 byte order mark: editors on Windows add one, PostgreSQL rejects it. */
export function stripBom(text: string): string {
  return text.startsWith(BOM) ? text.slice(1) : text;
}

/**
 * Reads a user's text file: refused at once above the kind's size limit (before reading it),
 * when it is binary, or when it cannot be read, with a message naming the file and what to do.
 * Returns the raw text (BOM included: callers that checksum need it) and the text to use.
 */
export function readInputFile(path: string, kind: InputFileKind): { raw: string; text: string } {
  const where = quoteInput(path, 200).slice(1, -1);
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory())
      throw new UserError(`${where}: is a directory, not a ${kind.what}: give the file's path`);
    size = st.size;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw unreadable(where, kind, err);
  }
  if (size > kind.maxBytes) {
    throw new UserError(
      `${where}: ${kind.what} is ${formatBytes(size)}, above the limit of ${formatBytes(kind.maxBytes)}: ${kind.tooLargeHint}`,
    );
  }
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw unreadable(where, kind, err);
  }
  if (isBinary(buf)) {
    throw new UserError(
      `${where}: is not a text file (binary or not UTF-8): a ${kind.what} is UTF-8 text`,
    );
  }
  const raw = buf.toString('utf8');
  return { raw, text: stripBom(raw) };
}

function unreadable(where: string, kind: InputFileKind, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return new UserError(`${where}: no such ${kind.what}: ${kind.missingHint}`);
  if (code === 'EACCES')
    return new UserError(`${where}: permission denied: make the ${kind.what} readable`);
  return new UserError(
    `${where}: cannot read the ${kind.what} (${code ?? (err as Error).message}): check the path`,
  );
}
