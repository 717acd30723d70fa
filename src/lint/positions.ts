/**
 * libpg-query reports statement and node positions as BYTE offsets into the UTF-8 text, and
 * syntax errors as 0-based CODE POINT offsets. Editors and GitHub annotations want 1-based line
 * and column, the column counted in characters (code points), so a line holding "é" or an emoji
 * before the statement still points at the right place.
 */
export interface Position {
  line: number;
  column: number;
}

export class SourceText {
  readonly bytes: Buffer;
  /** Byte offset where each line starts. */
  private readonly lineStarts: number[] = [0];

  constructor(readonly text: string) {
    this.bytes = Buffer.from(text, 'utf8');
    for (let i = 0; i < this.bytes.length; i++) {
      if (this.bytes[i] === 0x0a) this.lineStarts.push(i + 1);
    }
  }

  positionOfByte(byteOffset: number): Position {
    const offset = Math.max(0, Math.min(byteOffset, this.bytes.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    const start = this.lineStarts[lo]!;
    let column = 1;
    // Count code points: every byte that is not a UTF-8 continuation byte (10xxxxxx) starts one.
    for (let i = start; i < offset; i++) if ((this.bytes[i]! & 0xc0) !== 0x80) column++;
    return { line: lo + 1, column };
  }

  byteOfCodePoint(codePointOffset: number): number {
    let bytes = 0;
    let n = 0;
    for (const ch of this.text) {
      if (n >= codePointOffset) break;
      bytes += Buffer.byteLength(ch, 'utf8');
      n++;
    }
    return bytes;
  }

  positionOfCodePoint(codePointOffset: number): Position {
    return this.positionOfByte(this.byteOfCodePoint(codePointOffset));
  }

  /** The text between two byte offsets (statement slices, comment gaps). */
  sliceBytes(start: number, end?: number): string {
    return this.bytes.subarray(start, end).toString('utf8');
  }
}
