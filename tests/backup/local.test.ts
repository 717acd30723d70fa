import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PG_DUMP_NICENESS,
  backupRun,
  backupUndo,
  backupValidate,
  listBackups,
  restoreBackup,
} from '../../src/backup/backup';
import { LocalDirStorage, storageFromEnv } from '../../src/storage';
import { libpqConnection } from '../../src/storage/libpq';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createSampleTables, tableDigest, tableExists } from './helpers';

let source: TestDatabase;
let dir: string;
let storage: LocalDirStorage;
let env: NodeJS.ProcessEnv;
const targets: TestDatabase[] = [];

async function freshTarget(): Promise<TestDatabase> {
  const t = await createTestDatabase('bk_target');
  targets.push(t);
  return t;
}

beforeAll(async () => {
  source = await createTestDatabase('bk_source');
  await createSampleTables(source.pool);
  dir = await mkdtemp(join(tmpdir(), 'cutover-backups-'));
  storage = new LocalDirStorage(dir);
  env = { ...process.env, DATABASE_URL: source.url, CUTOVER_BACKUP_DIR: dir };
});

afterAll(async () => {
  await Promise.all([source?.drop(), ...targets.map((t) => t.drop())]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Niceness of a running dump (a pg_dump child of this process with --format=custom; a
 * `pg_dump --version` run to pick the binary is not one) from /proc/<pid>/stat, if any.
 */
function pgDumpNiceness(): number | undefined {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command: state, ppid, … nice is field 19 of stat(5), index 16 here.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (comm !== 'pg_dump' || Number(rest[1]) !== process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.split('\0').includes('--format=custom')) return Number(rest[16]);
  }
  return undefined;
}

describe('backup to a local directory', () => {
  it("runs pg_dump at a lower CPU priority: its compression is the worker host's work, not the server's", async () => {
    // Hold the table so pg_dump waits for its lock, alive, while we look at it.
    const locker = await source.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
    // Its own directory: the other tests count the backups in theirs.
    const own = await mkdtemp(join(tmpdir(), 'cutover-backups-nice-'));
    const run = backupRun(
      { connection: 'default', tables: ['accounts'], label: 'nice' },
      { env: { ...env, CUTOVER_BACKUP_DIR: own } },
    );
    let nice: number | undefined;
    try {
      for (let i = 0; i < 400 && nice === undefined; i++) {
        nice = pgDumpNiceness();
        if (nice === undefined) await sleep(25);
      }
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    const summary = await run.finally(() => rm(own, { recursive: true, force: true }));
    expect(nice).toBe(PG_DUMP_NICENESS);
    expect(summary.tables).toEqual(['public.accounts']);
    expect(PG_DUMP_NICENESS).toBeGreaterThan(0);
  });

  it('dumps, lists with a manifest, and restores the same data into a fresh database', async () => {
    const before = {
      accounts: await tableDigest(source.pool, 'accounts'),
      events: await tableDigest(source.pool, 'events'),
    };
    expect(before.accounts.rows).toBe(2000);

    // Storage chosen from the environment (CUTOVER_BACKUP_DIR), as the worker and CLI do.
    const progress: number[] = [];
    const summary = await backupRun(
      { connection: 'default', tables: ['accounts', 'public.events'], label: 'Before widen #1' },
      { env, onProgress: (b) => progress.push(b) },
    );
    expect(summary.id).toMatch(/^\d{8}T\d{6}Z-before-widen-1-[0-9a-f]{6}$/);
    expect(summary.tables).toEqual(['public.accounts', 'public.events']);
    expect(progress.at(-1)).toBe(summary.size);
    expect(summary.storage).toContain(dir);

    const files = await storage.list();
    expect(files).toEqual([`${summary.id}.dump`, `${summary.id}.manifest.json`]);
    const onDisk = await readFile(join(dir, `${summary.id}.dump`));
    expect(onDisk.length).toBe(summary.size);
    expect(onDisk.subarray(0, 5).toString()).toBe('PGDMP'); // custom format magic

    const listed = await listBackups({ env });
    const m = listed.find((b) => b.id === summary.id)!;
    expect(m).toMatchObject({
      label: 'Before widen #1',
      tables: ['public.accounts', 'public.events'],
      database: source.name,
      host: '127.0.0.1',
      format: 'custom',
      size: summary.size,
      sha256: summary.sha256,
    });
    expect(m.serverVersion).toMatch(/^\d+/);
    expect(m.pgDumpVersion).toMatch(/^pg_dump \(PostgreSQL\) \d+/);

    const target = await freshTarget();
    const result = await restoreBackup(summary.id, { targetUrl: target.url }, { env });
    expect(result.replaced).toEqual([]);
    expect(await tableDigest(target.pool, 'accounts')).toEqual(before.accounts);
    expect(await tableDigest(target.pool, 'events')).toEqual(before.events);
    // Sequences, indexes and constraints come back with the data.
    const r = await target.pool.query(
      `INSERT INTO accounts (email) VALUES ('new@example.com') RETURNING id`,
    );
    expect(r.rows[0].id).toBe(2001);
    const idx = await target.pool.query(
      `SELECT 1 FROM pg_indexes WHERE indexname = 'accounts_balance_idx'`,
    );
    expect(idx.rowCount).toBe(1);
  });

  it('refuses to overwrite existing tables without force and replaces them with it', async () => {
    const summary = await backupRun(
      { connection: 'default', tables: ['accounts', 'events'], label: 'overwrite' },
      { storage, env },
    );
    const expected = await tableDigest(source.pool, 'accounts');
    const target = await freshTarget();
    await target.pool.query(`CREATE TABLE accounts (id int PRIMARY KEY, junk text)`);
    await target.pool.query(`INSERT INTO accounts VALUES (1, 'keep me unless forced')`);

    await expect(restoreBackup(summary.id, { targetUrl: target.url }, { storage })).rejects.toThrow(
      /refusing to restore .*already has table public\.accounts.*--force/,
    );
    const untouched = await target.pool.query('SELECT junk FROM accounts');
    expect(untouched.rows).toEqual([{ junk: 'keep me unless forced' }]);
    expect(await tableExists(target.pool, 'events')).toBe(false);

    const result = await restoreBackup(
      summary.id,
      { targetUrl: target.url, force: true },
      { storage },
    );
    expect(result.replaced).toEqual(['public.accounts']);
    expect(await tableDigest(target.pool, 'accounts')).toEqual(expected);
    expect(await tableExists(target.pool, 'events')).toBe(true);
  });

  it('rejects a corrupted dump by checksum and restores nothing', async () => {
    const summary = await backupRun(
      { connection: 'default', tables: ['accounts'], label: 'to corrupt' },
      { storage, env },
    );
    const fh = await open(join(dir, `${summary.id}.dump`), 'r+');
    try {
      const pos = Math.floor(summary.size / 2);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, pos);
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, pos);
    } finally {
      await fh.close();
    }
    const target = await freshTarget();
    await expect(restoreBackup(summary.id, { targetUrl: target.url }, { storage })).rejects.toThrow(
      /checksum mismatch for backup .*nothing was restored/,
    );
    expect(await tableExists(target.pool, 'accounts')).toBe(false);
  });

  it('fails on a table that does not exist and leaves no backup behind', async () => {
    const keysBefore = await storage.list();
    await expect(
      backupRun(
        { connection: 'default', tables: ['accounts', 'no_such_table'], label: 'broken' },
        { storage, env },
      ),
    ).rejects.toThrow(/pg_dump failed .*no matching tables were found.*no_such_table/s);
    expect(await storage.list()).toEqual(keysBefore);
    expect((await listBackups({ storage })).some((b) => b.label === 'broken')).toBe(false);
    await expect(
      backupValidate({ connection: 'default', tables: ['no_such_table'] }, { storage, env }),
    ).rejects.toThrow(/no such table public\.no_such_table/);
  });

  it('a dump that fails before the storage starts reading is reported, not thrown from the stream', async () => {
    // A storage that reads only after an await of its own (as the local one makes its
    // directory first), here held until pg_dump has already failed.
    class LateReader extends LocalDirStorage {
      override async put(key: string, body: Readable, onProgress?: (bytes: number) => void) {
        for (let i = 0; i < 600 && !body.errored; i++) await sleep(50);
        expect(body.errored).toBeTruthy();
        return super.put(key, body, onProgress);
      }
    }
    const late = new LateReader(dir);
    const keysBefore = await storage.list();
    await expect(
      backupRun(
        { connection: 'default', tables: ['no_such_table'], label: 'late' },
        { storage: late, env },
      ),
    ).rejects.toThrow(/pg_dump failed .*no matching tables were found.*no_such_table/s);
    expect(await storage.list()).toEqual(keysBefore);
  });

  it('aborts a dump that fails half-way and removes the partial object', async () => {
    // A row LATIN1 cannot encode, written last: pg_dump has already streamed the header and
    // earlier rows when its COPY fails on this one.
    await source.pool.query(`CREATE TABLE late_failure (id int PRIMARY KEY, v text)`);
    await source.pool.query(
      `INSERT INTO late_failure SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 20000) g`,
    );
    await source.pool.query(`INSERT INTO late_failure VALUES (20001, 'euro € sign')`);
    const keysBefore = await storage.list();
    const progress: number[] = [];
    await expect(
      backupRun(
        { connection: 'default', tables: ['late_failure'], label: 'half-way' },
        {
          storage,
          env: { ...env, PGCLIENTENCODING: 'LATIN1' },
          onProgress: (b) => progress.push(b),
        },
      ),
    ).rejects.toThrow(/pg_dump failed .*has no equivalent in encoding "LATIN1"/s);
    expect(progress.length).toBeGreaterThan(0); // bytes did flow before the failure
    expect(await storage.list()).toEqual(keysBefore);
  });

  it('keeps credentials out of the manifest and the summary', async () => {
    const role = `bk_${randomBytes(4).toString('hex')}`;
    const password = `pw-${randomBytes(8).toString('hex')}`;
    await source.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    try {
      await source.pool.query(`GRANT SELECT ON accounts, accounts_id_seq TO ${role}`);
      const u = new URL(source.url);
      u.username = role;
      u.password = password;
      const summary = await backupRun(
        { connection: 'app', tables: ['accounts'], label: 'secrets' },
        { storage, env: { ...env, CUTOVER_DB_APP_URL: u.toString() } },
      );
      const manifestText = await readFile(join(dir, `${summary.id}.manifest.json`), 'utf8');
      for (const text of [manifestText, JSON.stringify(summary)]) {
        expect(text).not.toContain(password);
        expect(text).not.toContain(role);
        expect(text).not.toContain('postgres://');
      }
      expect(JSON.parse(manifestText).host).toBe('127.0.0.1');
      // pg_dump gets the password through its environment, never on its command line.
      const conn = libpqConnection(u.toString(), {});
      expect(conn.dbnameArg).not.toContain(password);
      expect(conn.dbnameArg).toContain(role);
      expect(conn.env.PGPASSWORD).toBe(password);
    } finally {
      await source.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it('explains unknown ids, unreachable targets and why undo keeps backups', async () => {
    await expect(
      restoreBackup('20990101T000000Z-nope-000000', {}, { storage, env }),
    ).rejects.toThrow(/unknown backup id "20990101T000000Z-nope-000000".*cutover backup list/);
    await expect(restoreBackup('../etc/passwd', {}, { storage, env })).rejects.toThrow(
      /unknown backup id/,
    );
    const summary = (await listBackups({ storage }))[0]!;
    await expect(
      restoreBackup(
        summary.id,
        { targetUrl: 'postgres://nobody:hunter2@127.0.0.1:1/none' },
        { storage },
      ),
    ).rejects.toThrow(
      /cannot connect to PostgreSQL at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/,
    );
    const undo = await backupUndo();
    expect(undo.undone).toBe(false);
    expect(undo.reason).toMatch(/kept/);
  });

  it('chooses the target from CUTOVER_BACKUP_TARGET', () => {
    expect(storageFromEnv({ CUTOVER_BACKUP_DIR: dir }).description).toBe(`local directory ${dir}`);
    expect(storageFromEnv({ CUTOVER_BACKUP_TARGET: `file://${dir}` }).description).toBe(
      `local directory ${dir}`,
    );
    expect(
      storageFromEnv({ CUTOVER_BACKUP_TARGET: 's3://bkt/some/prefix', AWS_REGION: 'eu-west-1' })
        .description,
    ).toBe('s3://bkt/some/prefix/');
    expect(storageFromEnv({ CUTOVER_BACKUP_S3_BUCKET: 'b2', AWS_REGION: 'x' }).description).toBe(
      's3://b2/cutover/backups/',
    );
    expect(() => storageFromEnv({ CUTOVER_BACKUP_TARGET: 's3' })).toThrow(
      /set CUTOVER_BACKUP_S3_BUCKET/,
    );
    expect(() => storageFromEnv({ CUTOVER_BACKUP_TARGET: 'ftp://x' })).toThrow(/not understood/);
  });
});
