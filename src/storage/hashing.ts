import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A pass-through stream that hashes (SHA-256) and counts what flows through it, so a dump is
 * checksummed on its way to storage instead of being read a second time.
 */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private digest: string | undefined;

  constructor(private readonly onProgress?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    done();
  }

  /**
   * Bytes seen so far. Deliberately not called `size` or `length`: lib-storage's Upload reads
   * those from its Body to guess the total, and would trust 0.
   */
  get byteCount(): number {
    return this.bytes;
  }

  /** Hex SHA-256; only available once the stream has ended. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('hash read before the stream ended');
    return this.digest;
  }
}
