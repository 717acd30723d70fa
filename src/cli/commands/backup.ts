import { Command, Option } from 'commander';
import type { BackupManifest } from '../../backup/backup';
import { UsageError } from '../../errors';
import { BACKUP_STORAGE_ENV_HELP } from '../../storage/env-help';

// The backup code (AWS SDK, pg) loads only when a backup command runs, not at every CLI start.
const backupLib = () => import('../../backup/backup');
const storageLib = () => import('../../storage/config');
import { action } from '../run';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function renderList(backups: BackupManifest[], where: string): string {
  if (backups.length === 0) return `no backups in ${where}\n`;
  const rows = backups.map((b) => [
    b.id,
    b.createdAt.replace(/\.\d+Z$/, 'Z'),
    formatBytes(b.size),
    `${b.database}@${b.host}`,
    b.tables.join(','),
    b.label,
  ]);
  const header = ['ID', 'CREATED', 'SIZE', 'DATABASE', 'TABLES', 'LABEL'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd() + '\n';
  return line(header) + rows.map(line).join('');
}

export function register(program: Command): void {
  const backup = program
    .command('backup')
    .description(
      'Back up tables with pg_dump (custom format), streamed to a local directory or S3, and ' +
        'restore them. Every backup has a manifest (tables, database, size, sha256, server and ' +
        'pg_dump versions); restore verifies the sha256 before pg_restore touches anything.',
    )
    .addHelpText('after', `\n${BACKUP_STORAGE_ENV_HELP}\n`);

  backup
    .command('create')
    .description('dump one or more tables to the backup target')
    .requiredOption(
      '-t, --table <table>',
      'table to dump (schema.table or table); repeatable',
      collect,
    )
    .option(
      '-l, --label <label>',
      'free text kept in the manifest and the id (e.g. before-widen-ids)',
    )
    .option(
      '-c, --connection <name>',
      'named connection to dump from (default: DATABASE_URL; other names: CUTOVER_DB_<NAME>_URL)',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ cutover backup create --table users
  $ cutover backup create -t public.orders -t public.order_items --label before-split
  $ CUTOVER_BACKUP_TARGET=s3://my-bucket/pg cutover backup create -t users --json

The password in the connection URL reaches pg_dump through PGPASSWORD, never its command line.

${BACKUP_STORAGE_ENV_HELP}
`,
    )
    .action(
      action(
        async (o: { table: string[]; label?: string; connection?: string; json?: boolean }) => {
          const [{ backupRun }, { storageFromEnv }] = await Promise.all([
            backupLib(),
            storageLib(),
          ]);
          const storage = storageFromEnv();
          const interactive = process.stderr.isTTY && !o.json;
          let lastReport = 0;
          const summary = await backupRun(
            { connection: o.connection ?? 'default', tables: o.table, label: o.label },
            {
              storage,
              onProgress: (bytes) => {
                if (!interactive || Date.now() - lastReport < 500) return;
                lastReport = Date.now();
                process.stderr.write(`\rdumping… ${formatBytes(bytes)}   `);
              },
            },
          );
          if (interactive) process.stderr.write('\r\x1b[K');
          if (o.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
          else
            process.stdout.write(
              `backup ${summary.id}: ${summary.tables.join(', ')}, ${formatBytes(summary.size)}, ` +
                `sha256 ${summary.sha256}\nstored in ${summary.storage}\n`,
            );
        },
      ),
    );

  backup
    .command('list')
    .description('list complete backups (those with a manifest), newest first')
    .option('--json', 'print the manifests as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ cutover backup list
  $ cutover backup list --json | jq -r '.[0].id'
`,
    )
    .action(
      action(async (o: { json?: boolean }) => {
        const [{ listBackups }, { storageFromEnv }] = await Promise.all([
          backupLib(),
          storageLib(),
        ]);
        const storage = storageFromEnv();
        const backups = await listBackups({ storage });
        process.stdout.write(
          o.json
            ? JSON.stringify(backups, null, 2) + '\n'
            : renderList(backups, storage.description),
        );
      }),
    );

  backup
    .command('restore')
    .description(
      'restore a backup with pg_restore in one transaction, after checking its sha256; ' +
        'refuses to replace existing tables without --force',
    )
    .argument('<id>', 'backup id, as shown by `cutover backup list`')
    .option('--target-url <url>', 'database to restore into (default: DATABASE_URL)')
    .addOption(
      new Option(
        '--target-connection <name>',
        'named connection to restore into (CUTOVER_DB_<NAME>_URL); keeps the password off the command line',
      ).conflicts('targetUrl'),
    )
    .option(
      '--force',
      'drop and replace tables that already exist (pg_restore --clean --if-exists)',
    )
    .option('--no-owner', 'do not restore ownership (for targets without the original roles)')
    .addHelpText(
      'after',
      `
Examples:
  $ cutover backup restore 20250101T120000Z-before-widen-1a2b3c
  $ cutover backup restore 20250101T120000Z-before-widen-1a2b3c --target-url postgres://app@db2/scratch
  $ cutover backup restore 20250101T120000Z-before-widen-1a2b3c --force   # replace the live tables

Without --force, a restore stops before changing anything if any backed-up table already exists.
Prefer --target-connection or DATABASE_URL over --target-url when the URL holds a password:
command lines are visible to other users of the machine.

${BACKUP_STORAGE_ENV_HELP}
`,
    )
    .action(
      action(
        async (
          id: string,
          o: { targetUrl?: string; targetConnection?: string; force?: boolean; owner: boolean },
        ) => {
          if (o.targetUrl !== undefined && !/^postgres(ql)?:\/\//.test(o.targetUrl)) {
            throw new UsageError(`--target-url must be a postgres:// URL`);
          }
          const [{ restoreBackup }, { connectionUrl }] = await Promise.all([
            backupLib(),
            import('../../db/connect'),
          ]);
          const targetUrl =
            o.targetUrl ??
            (o.targetConnection ? connectionUrl(o.targetConnection) : connectionUrl('default'));
          const result = await restoreBackup(id, {
            targetUrl,
            force: Boolean(o.force),
            noOwner: !o.owner,
          });
          process.stdout.write(
            `restored ${result.id} (${result.tables.join(', ')}) into ${result.target}` +
              (result.replaced.length ? `; replaced ${result.replaced.join(', ')}` : '') +
              '\n',
          );
        },
      ),
    );
}
