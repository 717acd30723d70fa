import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { HashingStream } from './hashing';
import { assertValidKey, ObjectNotFoundError, type BackupStorage, type PutResult } from './types';

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix inside the bucket ("" or ending in "/" once normalised). */
  prefix?: string;
  /** Client settings (region, endpoint, forcePathStyle, credentials); see s3ClientConfig. */
  client: S3ClientConfig;
  /** Multipart part size in bytes; S3 requires at least 5 MiB for all parts but the last. */
  partSize?: number;
  /** Parts uploaded concurrently; memory use is about partSize × queueSize. */
  queueSize?: number;
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;

/**
 * Objects in an S3 bucket (AWS or any S3-compatible server). put streams through lib-storage's
 * Upload: one PutObject for small objects, a multipart upload otherwise, aborted (parts
 * discarded) when the source stream fails.
 */
export class S3Storage implements BackupStorage {
  readonly bucket: string;
  readonly prefix: string;
  readonly description: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(opts: S3StorageOptions) {
    this.bucket = opts.bucket;
    this.prefix = normalisePrefix(opts.prefix ?? '');
    this.partSize = Math.max(opts.partSize ?? 8 * 1024 * 1024, MIN_PART_SIZE);
    this.queueSize = opts.queueSize ?? 2;
    this.client = new S3Client({
      // Flexible (CRC) checksums are an AWS extension many S3-compatible servers reject; our own
      // SHA-256 in the manifest is what restore verifies.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...opts.client,
    });
    const endpoint = typeof opts.client.endpoint === 'string' ? ` at ${opts.client.endpoint}` : '';
    this.description = `s3://${this.bucket}/${this.prefix}${endpoint}`;
  }

  private objectKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  async put(key: string, body: Readable, onProgress?: (bytes: number) => void): Promise<PutResult> {
    const hashing = new HashingStream(onProgress);
    // pipe() does not forward errors; without this a failing source would look like a short,
    // successful object instead of an aborted upload.
    body.once('error', (err) => hashing.destroy(err));
    body.pipe(hashing);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.objectKey(key), Body: hashing },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      hashing.destroy();
      body.destroy();
      throw err;
    }
    return { size: hashing.byteCount, sha256: hashing.sha256 };
  }

  async get(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      if (!(res.Body instanceof Readable)) throw new Error('S3 GetObject returned no stream body');
      return res.Body;
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key, this.description);
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(
      new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
    );
  }

  async list(prefix = ''): Promise<string[]> {
    const keys: string[] = [];
    const pages = paginateListObjectsV2(
      { client: this.client },
      { Bucket: this.bucket, Prefix: this.prefix + prefix },
    );
    for await (const page of pages) {
      for (const obj of page.Contents ?? []) {
        if (obj.Key?.startsWith(this.prefix)) keys.push(obj.Key.slice(this.prefix.length));
      }
    }
    return keys.sort();
  }

  /** Releases the client's sockets (long-lived processes can keep one storage instead). */
  close(): void {
    this.client.destroy();
  }
}

function normalisePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '');
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}
