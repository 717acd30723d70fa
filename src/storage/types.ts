import type { Readable } from 'node:stream';

/** What a finished put wrote: byte count and hex SHA-256 of exactly those bytes. */
export interface PutResult {
  size: number;
  sha256: string;
}

/**
 * A place to keep backup objects under slash-separated keys. Implementations stream: put never
 * holds a whole object in memory or in a temp file, and a put whose source stream fails leaves
 * no object behind under `key`.
 */
export interface BackupStorage {
  /** Where objects go, for messages (never contains credentials). */
  readonly description: string;
  /** Optional per-chunk callback reports bytes written so far (for heartbeats and progress). */
  put(key: string, body: Readable, onProgress?: (bytes: number) => void): Promise<PutResult>;
  /** The object's bytes; fails with ObjectNotFoundError when there is none. */
  get(key: string): Promise<Readable>;
  /** Keys (not prefixed by the storage's own root/prefix) that start with `prefix`, sorted. */
  list(prefix?: string): Promise<string[]>;
  exists(key: string): Promise<boolean>;
  /** Removes the object; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** A local file holding the object, when the storage has one (lets restore skip a copy). */
  localPath?(key: string): string;
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError';
  constructor(
    readonly key: string,
    where: string,
  ) {
    super(`no object "${key}" in ${where}`);
  }
}

/**
 * Keys are relative, slash-separated and free of "." / ".." segments, so a key can never step
 * outside the storage root (a local directory or an S3 prefix).
 */
export function assertValidKey(key: string): void {
  const segments = key.split('/');
  if (
    key.length === 0 ||
    key.length > 512 ||
    key.includes('\\') ||
    key.includes('\u0000') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new Error(`invalid storage key "${key}"`);
  }
}
