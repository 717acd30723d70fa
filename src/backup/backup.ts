/**
 * Backups of the tables a change touches: pg_dump (custom format) streamed straight into the
 * configured storage (local directory or S3), checksummed on the way, with a manifest beside the
 * dump. A backup exists only once its manifest does; a failed dump leaves nothing behind.
 *
 * Storage layout under the target's root / prefix:
 *   <id>.dump            pg_dump -Fc output
 *   <id>.manifest.json   BackupManifest (no credentials)
 */
import { CancelledFailure } from '@temporalio/activity';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connectionUrl, openClient, redactUrl, serverVersionOf } from '../db/connect';
import { parseQualifiedName, quoteQualified } from '../db/ident';
import { UserError } from '../errors';
import { HashingStream } from '../storage/hashing';
import { libpqConnection } from '../storage/libpq';
import { storageFromEnv } from '../storage/config';
import { ObjectNotFoundError, type BackupStorage } from '../storage/types';
import { cancellationSignal, heartbeat } from '../temporal/activity';
import { clientTool } from '../db/pg-installs';
import { dropNewerSettings, runPsqlScript } from '../db/older-server-restore';

export const MANIFEST_VERSION = 1;
const DUMP_SUFFIX = '.dump';
const MANIFEST_SUFFIX = '.manifest.json';

export interface BackupManifest {
  manifestVersion: typeof MANIFEST_VERSION;
  id: string;
  label: string;
  /** ISO-8601 time the dump started. */
  createdAt: string;
  /** Qualified names (schema.table) as given to pg_dump. */
  tables: string[];
  database: string;
  /** Host and port only; never user or password. */
  host: string;
  port: number;
  serverVersion: string;
  pgDumpVersion: string;
  format: 'custom';
  /** Storage key of the dump, relative to the storage root. */
  dumpKey: string;
  size: number;
  sha256: string;
  durationMs: number;
}

export interface BackupRunInput {
  /** Named connection (see src/db/connect.ts); never a URL, so no secret reaches Temporal. */
  connection: string;
  tables: string[];
  label?: string;
}

export interface BackupSummary {
  id: string;
  label: string;
  tables: string[];
  size: number;
  sha256: string;
  /** Where the backup went, e.g. "local directory /x" or "s3://bucket/prefix/" (no secrets). */
  storage: string;
}

/** Test and CLI seams; a Temporal activity call passes none of these. */
export interface BackupDeps {
  storage?: BackupStorage;
  env?: NodeJS.ProcessEnv;
  /** Bytes of dump written so far. */
  onProgress?: (bytes: number) => void;
  /** pg_dump --lock-wait-timeout: give up instead of queueing behind DDL for long. */
  lockWaitTimeoutMs?: number;
}

export class BackupError extends UserError {
  override name = 'BackupError';
}

/** Read-only checks before anything changes: tables exist, storage and pg_dump are usable. */
export async function backupValidate(
  input: BackupRunInput,
  deps: BackupDeps = {},
): Promise<{ ok: true; storage: string }> {
  const env = deps.env ?? process.env;
  const tables = normaliseTables(input.tables);
  const storage = deps.storage ?? storageFromEnv(env);
  const client = await openClient(connectionUrl(input.connection, env), 'cutover backup');
  try {
    await clientTool('pg_dump', (await serverVersionOf(client)).major);
    const missing = await missingTables(client, tables);
    if (missing.length) {
      throw new BackupError(`cannot back up: no such table ${missing.join(', ')}`);
    }
  } finally {
    await client.end();
  }
  return { ok: true, storage: storage.description };
}

/**
 * Dumps `tables` with pg_dump -Fc into the storage target and writes the manifest. Returns the
 * new backup's id and checksum. On any failure no manifest exists and the dump object is removed.
 */
export async function backupRun(
  input: BackupRunInput,
  deps: BackupDeps = {},
): Promise<BackupSummary> {
  const env = deps.env ?? process.env;
  const tables = normaliseTables(input.tables);
  const label = (input.label ?? '').trim();
  const storage = deps.storage ?? storageFromEnv(env);
  const conn = libpqConnection(connectionUrl(input.connection, env), env);

  const started = new Date();
  const id = newBackupId(started, label);
  const dumpKey = id + DUMP_SUFFIX;

  const client = await openClient(connectionUrl(input.connection, env), 'cutover backup');
  let serverVersion: string;
  let serverMajor: number;
  let database: string;
  try {
    ({ text: serverVersion, major: serverMajor } = await serverVersionOf(client));
    const r = await client.query<{ db: string }>(`SELECT current_database() AS db`);
    database = r.rows[0]!.db;
  } finally {
    await client.end();
  }
  const pgDump = await clientTool('pg_dump', serverMajor);

  const args = [
    '--format=custom',
    '--no-password',
    `--lock-wait-timeout=${deps.lockWaitTimeoutMs ?? 30_000}`,
    // Without it a --table that matches nothing is silently skipped when others do match.
    '--strict-names',
    '--dbname',
    conn.dbnameArg,
    // Quoted patterns match exactly one table: no case folding, no wildcard characters.
    ...tables.flatMap((t) => ['--table', quotePattern(t)]),
  ];
  const dump = spawnChecked(pgDump.path, args, conn.env, 'pg_dump');
  lowerPriority(dump.pid);
  const heartbeat = activityHeartbeat();
  const cancelled = onActivityCancel(() => dump.kill());

  let size: number;
  let sha256: string;
  try {
    ({ size, sha256 } = await storage.put(dumpKey, dump.stdout, (bytes) => {
      deps.onProgress?.(bytes);
      heartbeat({ phase: 'dump', id, bytes });
    }));
  } catch (err) {
    dump.kill();
    await storage.delete(dumpKey).catch(() => {});
    // Temporal expects a cancelled activity to end with CancelledFailure, not a dump error.
    if (cancelled.reason !== undefined) {
      throw new CancelledFailure(
        `backup cancelled (${cancelled.reason}); the partial dump was removed`,
      );
    }
    throw err instanceof UserError
      ? err
      : new BackupError(`backup of ${tables.join(', ')} failed: ${(err as Error).message}`);
  } finally {
    cancelled.dispose();
  }

  const manifest: BackupManifest = {
    manifestVersion: MANIFEST_VERSION,
    id,
    label,
    createdAt: started.toISOString(),
    tables,
    database,
    host: conn.host,
    port: conn.port,
    serverVersion,
    pgDumpVersion: pgDump.version,
    format: 'custom',
    dumpKey,
    size,
    sha256,
    durationMs: Date.now() - started.getTime(),
  };
  try {
    await storage.put(
      id + MANIFEST_SUFFIX,
      Readable.from([Buffer.from(JSON.stringify(manifest, null, 2) + '\n')]),
    );
  } catch (err) {
    await storage.delete(dumpKey).catch(() => {});
    throw err;
  }
  heartbeat({ phase: 'done', id, bytes: size });
  return { id, label, tables, size, sha256, storage: storage.description };
}

/** Backups are never deleted by an undo: they are what a human restores from after a mistake. */
export async function backupUndo(
  _input?: Partial<BackupRunInput>,
): Promise<{ undone: false; reason: string }> {
  return {
    undone: false,
    reason:
      'backups are kept on purpose (they are the way back after a bad change); remove old ones from the storage target by hand',
  };
}

/** All complete backups (those with a readable manifest), newest first. */
export async function listBackups(
  deps: Pick<BackupDeps, 'storage' | 'env'> = {},
): Promise<BackupManifest[]> {
  const storage = deps.storage ?? storageFromEnv(deps.env ?? process.env);
  const keys = (await storage.list()).filter(
    (k) => k.endsWith(MANIFEST_SUFFIX) && !k.includes('/'),
  );
  const manifests: BackupManifest[] = [];
  for (const key of keys) {
    try {
      manifests.push(await readManifest(storage, key.slice(0, -MANIFEST_SUFFIX.length)));
    } catch (err) {
      // A manifest someone damaged by hand should not hide every other backup.
      if (!(err instanceof SyntaxError || err instanceof BackupError)) throw err;
    }
  }
  return manifests.sort(
    (a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id),
  );
}

export interface RestoreOptions {
  /** Target database; default: the `default` named connection (DATABASE_URL). */
  targetUrl?: string;
  /** Replace tables that already exist in the target (pg_restore --clean --if-exists). */
  force?: boolean;
  /** Skip ownership commands (pg_restore --no-owner), for targets without the original roles. */
  noOwner?: boolean;
  /**
   * lock_timeout for pg_restore's statements, so a restore into a busy database never queues the
   * application behind its DROP/CREATE; a timeout fails the restore (nothing changed, it runs in
   * one transaction) with a LockTimeoutError that the caller may retry.
   */
  lockTimeoutMs?: number;
}

/** pg_restore gave up waiting for a lock: nothing changed, and a later attempt may succeed. */
export class RestoreLockTimeoutError extends Error {
  override name = 'RestoreLockTimeoutError';
}

export interface RestoreResult {
  id: string;
  tables: string[];
  /** Redacted target URL. */
  target: string;
  replaced: string[];
}

/**
 * Restores backup `id` into the target database: verifies the dump's SHA-256 against the
 * manifest first, refuses to touch tables that already exist unless `force`, and restores in a
 * single transaction so a failure leaves the target as it was.
 */
export async function restoreBackup(
  id: string,
  opts: RestoreOptions = {},
  deps: Pick<BackupDeps, 'storage' | 'env'> = {},
): Promise<RestoreResult> {
  const env = deps.env ?? process.env;
  const storage = deps.storage ?? storageFromEnv(env);
  const manifest = await readManifest(storage, id);
  const targetUrl = opts.targetUrl ?? connectionUrl('default', env);
  const conn = libpqConnection(targetUrl, env);

  const client = await openClient(targetUrl, 'cutover restore');
  let existing: string[];
  let targetMajor: number;
  try {
    targetMajor = (await serverVersionOf(client)).major;
    const schemas = [...new Set(manifest.tables.map((t) => parseQualifiedName(t).schema))];
    const r = await client.query<{ nspname: string }>(
      'SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)',
      [schemas],
    );
    const missingSchemas = schemas.filter((s) => !r.rows.some((row) => row.nspname === s));
    if (missingSchemas.length) {
      throw new BackupError(
        `cannot restore ${id}: schema ${missingSchemas.join(', ')} does not exist in the target database; create it first`,
      );
    }
    const missing = await missingTables(client, manifest.tables);
    existing = manifest.tables.filter((t) => !missing.includes(t));
  } finally {
    await client.end();
  }
  if (existing.length && !opts.force) {
    throw new BackupError(
      `refusing to restore ${id}: the target already has table ${existing.join(', ')}; ` +
        'pass --force to drop and replace it (pg_restore --clean --if-exists)',
    );
  }

  const dir = await mkdtemp(join(tmpdir(), 'cutover-restore-'));
  try {
    const dumpFile = await verifiedDumpFile(storage, manifest, dir);
    const objectArgs = [
      ...(opts.force ? ['--clean', '--if-exists'] : []),
      ...(opts.noOwner ? ['--no-owner'] : []),
    ];
    const env = opts.lockTimeoutMs
      ? {
          ...conn.env,
          PGOPTIONS:
            `${conn.env.PGOPTIONS ?? ''} -c lock_timeout=${Math.round(opts.lockTimeoutMs)}`.trim(),
        }
      : conn.env;
    // pg_restore must read the archive (as new as the pg_dump that wrote it) and talk to the target.
    const dumpMajor = Number(/\(PostgreSQL\)\s+(\d+)/.exec(manifest.pgDumpVersion)?.[1] ?? 0);
    const pgRestore = await clientTool('pg_restore', Math.max(targetMajor, dumpMajor));
    try {
      if (pgRestore.major <= targetMajor) {
        const args = [
          '--no-password',
          '--single-transaction',
          '--exit-on-error',
          ...objectArgs,
          '--dbname',
          conn.dbnameArg,
          dumpFile,
        ];
        const restore = spawnChecked(pgRestore.path, args, env, 'pg_restore');
        restore.stdout.resume();
        await restore.done;
      } else {
        // A newer pg_restore talking to an older server sets parameters that server does not
        // have (transaction_timeout from 17): restore through its script, without them, and
        // psql of the same install, still in one transaction that stops at the first error.
        const script = spawnChecked(
          pgRestore.path,
          ['--file=-', ...objectArgs, dumpFile],
          process.env,
          'pg_restore',
        );
        const psql = join(dirname(pgRestore.path), 'psql');
        const filtered = dropNewerSettings(targetMajor);
        // Not .pipe(): it would not pass a failing pg_restore on, and psql would wait for the
        // end of a script that never comes. runPsqlScript sees the error on `filtered`.
        pipeline(script.stdout, filtered).catch(() => {});
        try {
          await runPsqlScript(psql, conn.dbnameArg, env, filtered);
        } finally {
          script.kill();
        }
      }
    } catch (err) {
      if (/lock timeout/i.test((err as Error).message))
        throw new RestoreLockTimeoutError(
          `restore of ${id} waited longer than lock_timeout (${opts.lockTimeoutMs} ms) for a lock; nothing was changed`,
        );
      throw new BackupError(
        `restore of ${id} into ${redactUrl(targetUrl)} failed, nothing was changed: ${(err as Error).message}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { id, tables: manifest.tables, target: redactUrl(targetUrl), replaced: existing };
}

/** Reads and checks one manifest; unknown ids become a clear user error. */
export async function readManifest(storage: BackupStorage, id: string): Promise<BackupManifest> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) {
    throw new BackupError(
      `unknown backup id "${id}" (ids look like 20250101T120000Z-label-1a2b3c)`,
    );
  }
  let text: string;
  try {
    text = await streamToString(await storage.get(id + MANIFEST_SUFFIX));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      throw new BackupError(
        `unknown backup id "${id}" in ${storage.description} (cutover backup list shows what exists)`,
      );
    }
    throw err;
  }
  const m = JSON.parse(text) as BackupManifest;
  if (m.manifestVersion !== MANIFEST_VERSION || m.id !== id || !m.sha256 || !m.dumpKey) {
    throw new BackupError(`manifest of backup "${id}" is not a cutover backup manifest`);
  }
  return m;
}

/**
 * A local file holding the dump, verified against the manifest's size and SHA-256 (downloaded to
 * `dir` when the storage is remote). Throws before pg_restore ever sees a corrupted dump.
 */
async function verifiedDumpFile(
  storage: BackupStorage,
  manifest: BackupManifest,
  dir: string,
): Promise<string> {
  let file: string;
  const hashing = new HashingStream();
  let body: Readable;
  try {
    body = await storage.get(manifest.dumpKey);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      throw new BackupError(
        `backup ${manifest.id} is incomplete: its dump ${manifest.dumpKey} is missing from ${storage.description}`,
      );
    }
    throw err;
  }
  if (storage.localPath) {
    file = storage.localPath(manifest.dumpKey);
    await pipeline(body, hashing, devNull());
  } else {
    file = join(dir, 'dump');
    await pipeline(body, hashing, createWriteStream(file, { mode: 0o600 }));
  }
  if (hashing.sha256 !== manifest.sha256 || hashing.byteCount !== manifest.size) {
    throw new BackupError(
      `checksum mismatch for backup ${manifest.id}: the dump has sha256 ${hashing.sha256} ` +
        `(${hashing.byteCount} bytes) but the manifest says ${manifest.sha256} (${manifest.size} bytes); ` +
        'the dump is corrupt or was changed, nothing was restored',
    );
  }
  return file;
}

// ---------------------------------------------------------------------------------------------

function normaliseTables(tables: string[]): string[] {
  if (!Array.isArray(tables) || tables.length === 0) {
    throw new BackupError('a backup needs at least one table');
  }
  const out: string[] = [];
  for (const t of tables) {
    let parts;
    try {
      parts = parseQualifiedName(t.trim());
    } catch (err) {
      throw new BackupError((err as Error).message);
    }
    if (!parts.schema || !parts.name) throw new BackupError(`"${t}" is not a valid table name`);
    const q = `${parts.schema}.${parts.name}`;
    if (!out.includes(q)) out.push(q);
  }
  return out;
}

function quotePattern(qualified: string): string {
  const { schema, name } = parseQualifiedName(qualified);
  return quoteQualified(schema, name);
}

async function missingTables(
  client: { query: (sql: string, values: unknown[]) => Promise<{ rows: Array<{ t: string }> }> },
  tables: string[],
): Promise<string[]> {
  const r = await client.query(
    `SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL`,
    [tables.map(quotePattern)],
  );
  const missingQuoted = new Set(r.rows.map((row) => row.t));
  return tables.filter((t) => missingQuoted.has(quotePattern(t)));
}

/** Id: sortable UTC time, a slug of the label, and randomness against same-second collisions. */
function newBackupId(when: Date, label: string): string {
  const ts = when
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return [ts, slug || 'backup', randomBytes(3).toString('hex')].join('-');
}

interface CheckedChild {
  pid: number | undefined;
  stdout: Readable;
  /** Resolves on exit 0; rejects with the program's stderr otherwise. */
  done: Promise<void>;
  kill(): void;
}

/**
 * Spawns a PostgreSQL program whose stdout only ENDS after the exit status is known and good:
 * a failing pg_dump turns into an error on the stream, so the storage aborts the object instead
 * of keeping a truncated dump that looks complete.
 */
/**
 * pg_dump's compression (custom format) is its own CPU work on the worker's host, not the
 * server's. Where the worker shares a host with the database or the application (a small
 * set-up, the benchmark's 2 cores), that work must not take their CPU: it runs niced. The
 * server's side of the dump (its COPY out) is not affected.
 */
export const PG_DUMP_NICENESS = 10;

function lowerPriority(pid: number | undefined) {
  if (pid === undefined) return;
  try {
    setPriority(pid, PG_DUMP_NICENESS);
  } catch {
    // Not permitted here (some containers): the dump runs at normal priority, as before.
  }
}

function spawnChecked(
  program: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  name: string,
): CheckedChild {
  const child = spawn(program, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(new BackupError(`cannot run ${name} (${program}): ${err.message}`)),
    );
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        reject(new BackupError(`${name} failed (${why}): ${stderr.trim() || 'no error output'}`));
      }
    });
  });
  done.catch(() => {}); // observed through the stream or by the caller
  const gated = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      done.then(() => cb(), cb);
    },
  });
  // The consumer may attach only after an await of its own (the local storage makes its
  // directory first): a program that fails before then must not raise an unhandled 'error'. The
  // error is not lost: the stream stays errored, which the consumer's pipeline reports.
  gated.on('error', () => {});
  child.stdout.once('error', (err) => gated.destroy(err));
  child.stdout.pipe(gated);
  // A spawn failure never emits stdout 'end'; surface it on the stream too.
  done.catch((err: Error) => {
    if (!child.stdout.readableEnded) gated.destroy(err);
  });
  return {
    pid: child.pid,
    stdout: gated,
    done,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

function devNull(): Writable {
  return new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

async function streamToString(s: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks).toString('utf8');
}

/** Heartbeats at most once a second inside an activity; a no-op anywhere else (CLI, tests). */
function activityHeartbeat(): (details: unknown) => void {
  let last = 0;
  return (details) => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    heartbeat(details);
  };
}

/** Runs `fn` when the surrounding activity is cancelled; `reason` says whether (and why) it was. */
function onActivityCancel(fn: () => void): {
  dispose(): void;
  readonly reason: string | undefined;
} {
  const signal = cancellationSignal();
  if (!signal) return { dispose() {}, reason: undefined };
  if (signal.aborted) fn();
  signal.addEventListener('abort', fn, { once: true });
  return {
    dispose: () => signal.removeEventListener('abort', fn),
    get reason() {
      return signal.aborted ? String(signal.reason ?? 'cancelled') : undefined;
    },
  };
}
