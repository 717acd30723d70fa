import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors';
import { LocalDirStorage } from './local';
import { MIN_PART_SIZE, S3Storage } from './s3';
import type { BackupStorage } from './types';
import { DEFAULT_BACKUP_DIR, DEFAULT_S3_PREFIX } from './env-help';

// Kept in a module without the AWS SDK, so `cutover --help` can print it without loading the SDK.
export { BACKUP_STORAGE_ENV_HELP, DEFAULT_BACKUP_DIR, DEFAULT_S3_PREFIX } from './env-help';

/** Picks and builds the backup storage from environment variables (see BACKUP_STORAGE_ENV_HELP). */
export function storageFromEnv(env: NodeJS.ProcessEnv = process.env): BackupStorage {
  const target =
    env.CUTOVER_BACKUP_TARGET?.trim() || (env.CUTOVER_BACKUP_S3_BUCKET ? 's3' : 'local');

  if (target === 'local') {
    return new LocalDirStorage(resolve(env.CUTOVER_BACKUP_DIR || DEFAULT_BACKUP_DIR));
  }
  if (target.startsWith('file://')) {
    let dir: string;
    try {
      dir = fileURLToPath(target);
    } catch (err) {
      throw new UserError(
        `CUTOVER_BACKUP_TARGET "${target}" is not a valid file URL (use file:///absolute/dir): ${(err as Error).message}`,
      );
    }
    return new LocalDirStorage(dir);
  }
  if (target === 's3') {
    const bucket = env.CUTOVER_BACKUP_S3_BUCKET;
    if (!bucket) {
      throw new UserError(
        'CUTOVER_BACKUP_TARGET=s3 needs a bucket: set CUTOVER_BACKUP_S3_BUCKET (or use CUTOVER_BACKUP_TARGET=s3://bucket/prefix)',
      );
    }
    return s3FromEnv(bucket, env.CUTOVER_BACKUP_S3_PREFIX ?? DEFAULT_S3_PREFIX, env);
  }
  if (target.startsWith('s3://')) {
    const rest = target.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const prefix = slash === -1 ? '' : rest.slice(slash + 1);
    if (!bucket) throw new UserError(`CUTOVER_BACKUP_TARGET "${target}" names no bucket`);
    return s3FromEnv(bucket, prefix, env);
  }
  throw new UserError(
    `CUTOVER_BACKUP_TARGET "${target}" is not understood: use local, s3, file:///dir or s3://bucket/prefix`,
  );
}

function s3FromEnv(bucket: string, prefix: string, env: NodeJS.ProcessEnv): S3Storage {
  return new S3Storage({
    bucket,
    prefix,
    client: s3ClientConfig(env),
    partSize: partSizeFromEnv(env),
  });
}

/** S3 client settings from the environment; explicit values only where the env provides them. */
export function s3ClientConfig(env: NodeJS.ProcessEnv): S3ClientConfig {
  const endpoint = env.CUTOVER_BACKUP_S3_ENDPOINT || undefined;
  const config: S3ClientConfig = {};
  if (endpoint) {
    try {
      new URL(endpoint);
    } catch {
      throw new UserError(
        `CUTOVER_BACKUP_S3_ENDPOINT "${endpoint}" is not a URL (e.g. http://127.0.0.1:9000)`,
      );
    }
    config.endpoint = endpoint;
  }
  // S3-compatible servers rarely have a region; the SDK still insists on one for signing.
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint ? 'us-east-1' : undefined);
  if (region) config.region = region;
  config.forcePathStyle = parseBool(
    env.CUTOVER_BACKUP_S3_FORCE_PATH_STYLE,
    Boolean(endpoint),
    'CUTOVER_BACKUP_S3_FORCE_PATH_STYLE',
  );
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    config.credentials = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  return config;
}

function partSizeFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.CUTOVER_BACKUP_S3_PART_SIZE_MB;
  if (!raw) return undefined;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb * 1024 * 1024 < MIN_PART_SIZE) {
    throw new UserError(
      `CUTOVER_BACKUP_S3_PART_SIZE_MB "${raw}" must be a number of MiB, at least 5 (S3's minimum part size)`,
    );
  }
  return Math.floor(mb * 1024 * 1024);
}

function parseBool(raw: string | undefined, fallback: boolean, name: string): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new UserError(`${name} "${raw}" must be true or false`);
}
