/**
 * Keeps the last `limit` bytes of a stream of chunks: a hook or router command may print
 * megabytes, but the error a human reads (and the Temporal history that stores it) needs only
 * the tail, where the failure usually is.
 */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly limit = 16 * 1024) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const excess = this.size - this.limit;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
        this.dropped += excess;
      }
    }
  }

  /** The kept text, prefixed with a marker when earlier output was dropped. */
  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `[… ${this.dropped} earlier bytes dropped]\n${body}` : body;
  }
}

/** The last `max` characters of a string, for one-line error messages. */
export function tail(text: string, max = 2000): string {
  const trimmed = text.trimEnd();
  return trimmed.length <= max ? trimmed : `…${trimmed.slice(trimmed.length - max)}`;
}
