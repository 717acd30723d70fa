export * from './types';
export { HashingStream } from './hashing';
export { LocalDirStorage } from './local';
export { S3Storage, MIN_PART_SIZE, type S3StorageOptions } from './s3';
export {
  storageFromEnv,
  s3ClientConfig,
  BACKUP_STORAGE_ENV_HELP,
  DEFAULT_BACKUP_DIR,
  DEFAULT_S3_PREFIX,
} from './config';
