import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { backupRun, backupValidate } from '../../src/backup/backup';
import { openClient, serverVersionOf } from '../../src/db/connect';
import { dropNewerSettings, runPsqlScript } from '../../src/db/older-server-restore';
import { clientTool, serverInstall } from '../../src/db/pg-installs';
import {
  SUPPORTED_MAJORS,
  UnsupportedServerError,
  assertSupported,
} from '../../src/db/server-version';
import { LocalDirStorage } from '../../src/storage';
import { createTestDatabase, type TestDatabase } from '../support/db';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('srvver');
  await db.pool.query('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)');
  dir = await mkdtemp(join(tmpdir(), 'cutover-srvver-'));
});

afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('the server check', () => {
  it('accepts the server under test and knows its major', async () => {
    const client = await openClient(db.url);
    try {
      const v = await serverVersionOf(client);
      expect(v.major).toBe(inject('pgMajor'));
      expect(v.num).toBeGreaterThanOrEqual(v.major * 10000);
      expect(v.text).toMatch(new RegExp(`^${v.major}\\.`));
    } finally {
      await client.end();
    }
  });

  it('refuses majors outside 13–18, naming the version', () => {
    const v = (num: number, text: string) => ({ num, major: Math.floor(num / 10000), text });
    expect(() => assertSupported(v(120022, '12.22'))).toThrow(UnsupportedServerError);
    expect(() => assertSupported(v(120022, '12.22'))).toThrow(
      /PostgreSQL 12\.22 is not supported: cutover supports PostgreSQL 13 to 18; upgrade the server first/,
    );
    expect(() => assertSupported(v(190000, '19devel'))).toThrow(
      /PostgreSQL 19devel is not supported: cutover supports PostgreSQL 13 to 18$/,
    );
    expect(assertSupported(v(130000, '13.0')).major).toBe(13);
    expect(assertSupported(v(180006, '18.6')).major).toBe(18);
  });

  it('finds the test servers installed for every supported major', () => {
    for (let m = SUPPORTED_MAJORS.oldest; m <= SUPPORTED_MAJORS.newest; m++) {
      expect(serverInstall(String(m)).major).toBe(m);
    }
    expect(serverInstall().major).toBe(SUPPORTED_MAJORS.newest);
    expect(() => serverInstall('12')).toThrow(/CUTOVER_TEST_PG=12: expected a supported major/);
  });
});

describe('client tools', () => {
  it('picks a pg_dump at least as new as the server, newest first', async () => {
    const t = await clientTool('pg_dump', inject('pgMajor'));
    expect(t.major).toBeGreaterThanOrEqual(inject('pgMajor'));
    expect(t.major).toBe(SUPPORTED_MAJORS.newest);
    expect(t.version).toMatch(/^pg_dump \(PostgreSQL\) \d+\.\d+/);
  });

  it('refuses an older pg_dump with a message saying what to install, and dumps nothing', async () => {
    // A stand-in for an old client install: its pg_dump only reports an old version.
    const bin = join(dir, 'old-bin');
    await mkdir(bin);
    await writeFile(join(bin, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 12.22"\n');
    await chmod(join(bin, 'pg_dump'), 0o755);
    vi.stubEnv('CUTOVER_PG_BIN', bin);
    const major = inject('pgMajor');
    await expect(clientTool('pg_dump', major)).rejects.toThrow(
      new RegExp(
        `pg_dump must be at least as new as the server \\(PostgreSQL ${major}\\): only .*old-bin/pg_dump \\(12\\) found in CUTOVER_PG_BIN=.*older than the server\\. Install PostgreSQL ${major} or newer client tools`,
      ),
    );

    const backups = join(dir, 'backups');
    const env = { ...process.env, DATABASE_URL: db.url, CUTOVER_BACKUP_DIR: backups };
    const storage = new LocalDirStorage(backups);
    await expect(
      backupValidate({ connection: 'default', tables: ['t'] }, { env, storage }),
    ).rejects.toThrow(/pg_dump must be at least as new as the server/);
    await expect(
      backupRun({ connection: 'default', tables: ['t'] }, { env, storage }),
    ).rejects.toThrow(/pg_dump must be at least as new as the server/);
    expect(await storage.list('')).toEqual([]);
  });
});

describe('restoring with a newer pg_restore into an older server', () => {
  const header = [
    'SET statement_timeout = 0;',
    'SET transaction_timeout = 0;',
    "SELECT pg_catalog.set_config('search_path', '', false);",
    '',
    'CREATE TABLE public.r (note text);',
    'COPY public.r (note) FROM stdin;',
    'SET transaction_timeout = 0;',
    '\\.',
    '',
  ].join('\n');

  const filtered = async (major: number) =>
    (
      await Readable.from([Buffer.from(header)])
        .pipe(dropNewerSettings(major))
        .toArray()
    )
      .map((b: Buffer) => b.toString())
      .join('');

  it('drops settings the target does not know from the header only', async () => {
    const old = await filtered(16);
    expect(old).not.toMatch(/^SET transaction_timeout = 0;\nSELECT/m);
    // The same text as table data further down passes untouched.
    expect(old).toContain('COPY public.r (note) FROM stdin;\nSET transaction_timeout = 0;\n\\.');
    expect(await filtered(17)).toBe(header);
  });

  it('loads the filtered script in one transaction', async () => {
    const psql = (await clientTool('psql', inject('pgMajor'))).path;
    await runPsqlScript(
      psql,
      db.url,
      process.env,
      Readable.from([Buffer.from(header)]).pipe(dropNewerSettings(inject('pgMajor'))),
    );
    const r = await db.pool.query<{ note: string }>('SELECT note FROM r');
    expect(r.rows).toEqual([{ note: 'SET transaction_timeout = 0;' }]);
    await db.pool.query('DROP TABLE r');
  });

  it('commits nothing when the script breaks off or fails half-way', async () => {
    const psql = (await clientTool('psql', inject('pgMajor'))).path;
    async function* brokenOff() {
      yield Buffer.from('CREATE TABLE half (x int);\nINSERT INTO half VALUES (1);\n');
      await new Promise((r) => setTimeout(r, 200));
      throw new Error('pg_restore died');
    }
    await expect(
      runPsqlScript(psql, db.url, process.env, Readable.from(brokenOff())),
    ).rejects.toThrow(/pg_restore died/);
    await expect(
      runPsqlScript(
        psql,
        db.url,
        process.env,
        Readable.from([Buffer.from('CREATE TABLE half (x int);\nSELECT 1/0;\n')]),
      ),
    ).rejects.toThrow(/psql failed .*division by zero/s);
    const r = await db.pool.query(`SELECT to_regclass('public.half') AS t`);
    expect(r.rows[0].t).toBeNull();
  });
});
