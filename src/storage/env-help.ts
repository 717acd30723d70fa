export const DEFAULT_BACKUP_DIR = '.cutover/backups';
export const DEFAULT_S3_PREFIX = 'cutover/backups/';

/**
 * The environment variables that choose and configure the backup target. Storage settings (and
 * above all credentials) live only here, never in plans or workflow inputs, so they never reach
 * a Temporal history.
 */
export const BACKUP_STORAGE_ENV_HELP = `Backup storage (environment only):
  CUTOVER_BACKUP_TARGET      local | s3 | file:///abs/dir | s3://bucket/prefix
                             (unset: s3 when CUTOVER_BACKUP_S3_BUCKET is set, else local)
  CUTOVER_BACKUP_DIR         local directory (default ./${DEFAULT_BACKUP_DIR})
  CUTOVER_BACKUP_S3_BUCKET   bucket for target s3
  CUTOVER_BACKUP_S3_PREFIX   key prefix inside the bucket (default ${DEFAULT_S3_PREFIX})
  CUTOVER_BACKUP_S3_ENDPOINT endpoint of an S3-compatible server (MinIO, Ceph, rclone, R2...)
  CUTOVER_BACKUP_S3_FORCE_PATH_STYLE  true|false (default true when an endpoint is set)
  CUTOVER_BACKUP_S3_PART_SIZE_MB      multipart part size, min 5 (default 8)
  AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE
                             standard AWS settings (the SDK's default chain applies when unset)`;
