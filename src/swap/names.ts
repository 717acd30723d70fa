import { createHash } from 'node:crypto';

const MAX = 63;

function fit(head: string, tail: string): string {
  while (Buffer.byteLength(head + tail, 'utf8') > MAX) head = head.slice(0, -1);
  return head + tail;
}

/** A name for one of the archive's indexes: unique per archive, at most 63 bytes. */
export function archivedIndexName(index: string, archive: string): string {
  const h = createHash('sha256').update(`${archive}\u0000${index}`).digest('hex').slice(0, 8);
  return fit(index, `_a${h}`);
}
