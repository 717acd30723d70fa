/**
 * Migration checksums. A checksum is the sha256 (hex) of the up script after normalization:
 * the UTF-8 BOM removed and every CRLF (or lone CR) turned into LF. So git's autocrlf, an editor
 * that adds a BOM, or a checkout on Windows never makes an applied migration look "changed"
 * (Flyway ignores line endings and BOMs for the same reason); any other edit still does.
 *
 * History rows written before normalization hold the sha256 of the raw file text. Such a row
 * still validates when it equals the raw sha of the file as it is now, or of the file as it would
 * be with only its line endings or BOM changed (all-LF, all-CRLF, with or without BOM): that
 * covers a file that went from CRLF to LF since it was applied. `cutover migrate` then rewrites
 * the row to the normalized checksum, so nobody has to re-apply anything.
 */
import { createHash } from 'node:crypto';

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function normalizeScript(text: string): string {
  return text.replace(/^\ufeff/, '').replace(/\r\n?/g, '\n');
}

/** The checksum stored in the history for a script. */
export function scriptChecksum(raw: string): string {
  return sha256(normalizeScript(raw));
}

/**
 * Checksums an older cutover may have stored for this script: its raw text, and the same text
 * with each line-ending style and with or without a BOM.
 */
export function legacyChecksums(raw: string): string[] {
  const lf = normalizeScript(raw);
  const crlf = lf.replace(/\n/g, '\r\n');
  const variants = new Set([raw, lf, crlf, `\ufeff${lf}`, `\ufeff${crlf}`]);
  return [...variants].map(sha256);
}
