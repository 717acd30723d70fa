import { appendFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  migrate,
  rollback,
  status,
  integrityProblems,
  loadMigrations,
  MigrationError,
} from '../../src/migrate';
import { catalogSnapshot } from '../support/catalog';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleMigrationsDir, scratchMigrations } from '../support/migrations-dir';

let db: TestDatabase;

async function resetDatabase(): Promise<void> {
  await db.pool.query(
    `DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP SCHEMA IF EXISTS cutover CASCADE`,
  );
}

async function appliedVersions(): Promise<number[]> {
  const r = await db.pool.query(`SELECT version FROM cutover.schema_migrations ORDER BY version`);
  return r.rows.map((x) => x.version as number);
}

beforeAll(async () => {
  db = await createTestDatabase('migrate');
});
afterAll(async () => {
  await db.drop();
});
beforeEach(resetDatabase);

const exampleCount = readdirSync(exampleMigrationsDir).filter((f) => f.endsWith('.up.sql')).length;

describe('migrate and rollback', () => {
  it('applies up to a target version, then the rest, recording checksum, time and author', async () => {
    const first = await migrate(db.url, {
      dir: exampleMigrationsDir,
      to: '0003_create_user_preferences',
    });
    expect(first.map((r) => r.version)).toEqual([1, 2, 3]);
    expect(await appliedVersions()).toEqual([1, 2, 3]);
    const row = (await db.pool.query(`SELECT * FROM cutover.schema_migrations WHERE version = 3`))
      .rows[0];
    expect(row.name).toBe('create_user_preferences');
    expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(row.applied_by).toMatch(/@/);
    expect(row.execution_ms).toBeGreaterThanOrEqual(0);

    const rest = await migrate(db.url, { dir: exampleMigrationsDir });
    expect(rest[0]!.version).toBe(4);
    expect(await appliedVersions()).toHaveLength(exampleCount);
    expect(await migrate(db.url, { dir: exampleMigrationsDir })).toEqual([]);
  });

  it('rolls back by steps and to a version, updating the history', async () => {
    await migrate(db.url, { dir: exampleMigrationsDir });
    const two = await rollback(db.url, { dir: exampleMigrationsDir, steps: 2 });
    expect(two.map((r) => r.version)).toEqual([exampleCount, exampleCount - 1]);
    expect(await appliedVersions()).toEqual([1, 2, 3, 4, 5, 6].slice(0, exampleCount - 2));
    await rollback(db.url, { dir: exampleMigrationsDir, to: 2 });
    expect(await appliedVersions()).toEqual([1, 2]);
    const tables = await db.pool.query(
      `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
    );
    expect(tables.rows.map((r) => r.tablename)).toEqual(['posts', 'users']);
  });

  it('every down script restores the schema: up, down, up again gives the same catalog at each step', async () => {
    // The history table stays once created, so leave the cutover schema out of the comparison.
    const appSchema = async () =>
      Object.fromEntries(
        Object.entries(await catalogSnapshot(db.pool)).map(([k, rows]) => [
          k,
          rows.filter((r) => !/\bcutover\b/.test(r)),
        ]),
      );
    const snapshots = [await appSchema()];
    for (let v = 1; v <= exampleCount; v++) {
      await migrate(db.url, { dir: exampleMigrationsDir, to: v });
      snapshots.push(await appSchema());
    }
    for (let v = exampleCount; v >= 1; v--) {
      await rollback(db.url, { dir: exampleMigrationsDir, steps: 1 });
      expect(await appSchema(), `rolling back ${v}`).toEqual(snapshots[v - 1]);
    }
    await migrate(db.url, { dir: exampleMigrationsDir });
    expect(await appSchema()).toEqual(snapshots[exampleCount]);
  });

  it('seeds data the example migrations promise: preferences default to light, avatars are populated', async () => {
    await migrate(db.url, { dir: exampleMigrationsDir, to: 2 });
    await db.pool.query(
      `INSERT INTO users (email, name) VALUES ('a@example.com', 'Ada'), ('b@example.com', 'Bob')`,
    );
    await migrate(db.url, { dir: exampleMigrationsDir, to: 6 });
    const prefs = await db.pool.query(`SELECT theme, notifications FROM user_preferences`);
    expect(prefs.rows).toEqual([
      { theme: 'light', notifications: true },
      { theme: 'light', notifications: true },
    ]);
    const avatars = await db.pool.query(
      `SELECT count(*)::int AS n FROM users WHERE avatar_url IS NULL`,
    );
    expect(avatars.rows[0].n).toBe(0);
    await expect(
      db.pool.query(`INSERT INTO users (email, name) VALUES ('c@example.com', 'Cy')`),
    ).rejects.toThrow(/avatar_url/);
  });

  it('dry run applies, reports and rolls back, leaving no trace (not even the history table)', async () => {
    const before = await catalogSnapshot(db.pool);
    const results = await migrate(db.url, { dir: exampleMigrationsDir, dryRun: true });
    expect(results).toHaveLength(exampleCount);
    const concurrent = results.find((r) => r.id === '0007_index_posts_user_id')!;
    expect(concurrent.skipped).toBe(true);
    expect(results[0]!.sql?.[0]).toMatch(/^CREATE TABLE users/);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
  });

  it('runs a no-transaction migration statement by statement (CREATE INDEX CONCURRENTLY)', async () => {
    await migrate(db.url, { dir: exampleMigrationsDir, to: 7 });
    const idx = await db.pool.query(
      `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'posts_user_id_idx'`,
    );
    expect(idx.rows).toEqual([{ indisvalid: true }]);
  });

  it('retries a statement whose lock is held elsewhere, then succeeds once it is released', async () => {
    await migrate(db.url, { dir: exampleMigrationsDir, to: 3 });
    const dir = scratchMigrations();
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query(`BEGIN; LOCK TABLE users IN ACCESS SHARE MODE`);
    const retries: string[] = [];
    setTimeout(() => void holder.query('COMMIT'), 1500);
    try {
      await migrate(db.url, {
        dir,
        to: 4,
        lockTimeoutMs: 200,
        lockAttempts: 30,
        log: (l) => retries.push(l),
      });
    } finally {
      await holder.end();
      rmSync(dir, { recursive: true });
    }
    expect(retries.filter((l) => /lock not granted/.test(l)).length).toBeGreaterThan(0);
    expect(await appliedVersions()).toEqual([1, 2, 3, 4]);
  });

  it('gives up after its lock attempts, with nothing of the migration left behind', async () => {
    await migrate(db.url, { dir: exampleMigrationsDir, to: 3 });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query(`BEGIN; LOCK TABLE users IN ACCESS SHARE MODE`);
    try {
      await expect(
        migrate(db.url, { dir: exampleMigrationsDir, to: 4, lockTimeoutMs: 100, lockAttempts: 2 }),
      ).rejects.toThrow(/lock timeout/);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect(await appliedVersions()).toEqual([1, 2, 3]);
  });
});

describe('integrity and bad input', () => {
  it('detects an applied file that changed, refuses to migrate, and reports it in status', async () => {
    const dir = scratchMigrations();
    try {
      await migrate(db.url, { dir, to: 2 });
      appendFileSync(join(dir, '0002_create_posts.up.sql'), '\n-- edited after the fact\n');
      const report = await status(db.url, { dir });
      expect(report.entries.find((e) => e.version === 2)!.state).toBe('changed');
      expect(integrityProblems(report)[0]).toMatch(/0002_create_posts: the up script changed/);
      await expect(migrate(db.url, { dir })).rejects.toThrow(
        /refusing to migrate[\s\S]*0002_create_posts/,
      );
      expect(await appliedVersions()).toEqual([1, 2]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reports an applied migration whose file vanished', async () => {
    const dir = scratchMigrations();
    try {
      await migrate(db.url, { dir });
      for (const f of readdirSync(dir).filter((f) =>
        f.startsWith(String(exampleCount).padStart(4, '0')),
      ))
        unlinkSync(join(dir, f));
      const report = await status(db.url, { dir });
      expect(report.entries.at(-1)!.state).toBe('missing');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses a pending migration numbered below the newest applied one unless allowed', async () => {
    const table = (name: string) => ({
      [`${name}.up.sql`]: `CREATE TABLE ${name.slice(5)} (id int PRIMARY KEY);`,
      [`${name}.down.sql`]: `DROP TABLE ${name.slice(5)};`,
    });
    // main applied 0001 and 0002; a branch merged later brings 0002 renumbered to 0003 by its
    // author, while main's 0003 was applied first: simulated by applying 0001 + 0003 only.
    const dir = scratchMigrations({ ...table('0001_a'), ...table('0002_b'), ...table('0003_c') });
    try {
      await migrate(db.url, { dir, to: 1 });
      const c = loadMigrations(dir).find((m) => m.version === 3)!;
      await db.pool.query(`CREATE TABLE c (id int PRIMARY KEY)`);
      await db.pool.query(
        `INSERT INTO cutover.schema_migrations (version, name, checksum, execution_ms, applied_by) VALUES (3, 'c', $1, 1, 'other-branch')`,
        [c.checksum],
      );
      await expect(migrate(db.url, { dir })).rejects.toThrow(
        /out-of-order migration\(s\) 0002_b .*--allow-out-of-order/s,
      );
      expect(await appliedVersions()).toEqual([1, 3]);
      await migrate(db.url, { dir, allowOutOfOrder: true });
      expect(await appliedVersions()).toEqual([1, 2, 3]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("names the file, the line and PostgreSQL's error, and keeps nothing of the failed migration", async () => {
    const dir = scratchMigrations({
      '0001_ok.up.sql': 'CREATE TABLE ok (id int PRIMARY KEY);',
      '0001_ok.down.sql': 'DROP TABLE ok;',
      '0002_bad.up.sql':
        '-- creates t, then fails\nCREATE TABLE t (id int);\n\nINSERT INTO t\n  SELECT no_such_column FROM ok;\n',
      '0002_bad.down.sql': 'DROP TABLE t;',
    });
    try {
      const err = await migrate(db.url, { dir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect((err as MigrationError).message).toMatch(
        /^0002_bad\.up\.sql:5: ERROR: column "no_such_column" does not exist/,
      );
      expect(await appliedVersions()).toEqual([1]);
      const t = await db.pool.query(`SELECT to_regclass('public.t') AS t`);
      expect(t.rows[0].t).toBeNull();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reports a syntax error with its line', async () => {
    const dir = scratchMigrations({
      '0001_typo.up.sql': 'CREATE TABLE a (id int);\nCREAT TABLE b (id int);\n',
      '0001_typo.down.sql': 'DROP TABLE a;',
    });
    try {
      await expect(migrate(db.url, { dir })).rejects.toThrow(
        /0001_typo\.up\.sql:2: ERROR: syntax error at or near "CREAT"/,
      );
      expect((await db.pool.query(`SELECT to_regclass('public.a') AS t`)).rows[0].t).toBeNull();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses malformed names, duplicate numbers, gaps and orphan down scripts before touching the database', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ '1_short.up.sql': 'SELECT 1;' }, /1_short\.up\.sql: malformed migration file name/],
      [{ '0001_Bad-Name.up.sql': 'SELECT 1;' }, /malformed migration file name/],
      [
        { '0001_a.up.sql': 'SELECT 1;', '0001_b.up.sql': 'SELECT 1;' },
        /version 0001 is also used by "a": duplicate migration number/,
      ],
      [
        { '0001_a.up.sql': 'SELECT 1;', '0003_c.up.sql': 'SELECT 1;' },
        /numbering gap: 0001 is followed by 0003/,
      ],
      [{ '0001_a.down.sql': 'SELECT 1;' }, /0001_a\.down\.sql has no matching \.up\.sql/],
    ];
    for (const [files, message] of cases) {
      const dir = scratchMigrations(files);
      try {
        await expect(migrate(db.url, { dir })).rejects.toThrow(message);
      } finally {
        rmSync(dir, { recursive: true });
      }
    }
    expect((await db.pool.query(`SELECT to_regnamespace('cutover') AS s`)).rows[0].s).toBeNull();
  });

  it('refuses an unknown target version', async () => {
    await expect(migrate(db.url, { dir: exampleMigrationsDir, to: 99 })).rejects.toThrow(
      /unknown target version 99/,
    );
    await expect(migrate(db.url, { dir: exampleMigrationsDir, to: 'latest' })).rejects.toThrow(
      /is not a migration version/,
    );
    await expect(rollback(db.url, { dir: exampleMigrationsDir, to: 77 })).rejects.toThrow(
      /unknown target version 77/,
    );
  });

  it('runs the safety lint first: unsafe migrations are refused unless acknowledged', async () => {
    const files = {
      '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY, v int);',
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_idx.up.sql': 'CREATE INDEX t_v_idx ON t (v);',
      '0002_idx.down.sql': '-- cutover:no-transaction\nDROP INDEX CONCURRENTLY t_v_idx;',
    };
    const dir = scratchMigrations(files);
    try {
      await migrate(db.url, { dir, to: 1 });
      await expect(migrate(db.url, { dir })).rejects.toThrow(
        /refusing to migrate: the safety lint found 1 error\(s\); nothing was applied[\s\S]*0002_idx\.up\.sql:1:1[\s\S]*CONCURRENTLY/,
      );
      expect(await appliedVersions()).toEqual([1]);
      const logged: string[] = [];
      await migrate(db.url, { dir, allowUnsafe: true, log: (l) => logged.push(l) });
      expect(logged.join('\n')).toMatch(/1 unsafe operation\(s\) acknowledged with --allow-unsafe/);
      expect(await appliedVersions()).toEqual([1, 2]);
    } finally {
      rmSync(dir, { recursive: true });
    }
    await resetDatabase();
    const acknowledged = scratchMigrations({
      ...files,
      '0002_idx.up.sql':
        '-- cutover-lint:ignore create-index-not-concurrently -- t is empty until 0003 ships\nCREATE INDEX t_v_idx ON t (v);',
    });
    try {
      await migrate(db.url, { dir: acknowledged });
      expect(await appliedVersions()).toEqual([1, 2]);
    } finally {
      rmSync(acknowledged, { recursive: true });
    }
  });

  it('refuses a rollback whose down script is missing before running any down script', async () => {
    const dir = scratchMigrations();
    try {
      await migrate(db.url, { dir });
      unlinkSync(join(dir, '0006_avatar_not_null.down.sql'));
      const before = await catalogSnapshot(db.pool);
      await expect(rollback(db.url, { dir, to: 4 })).rejects.toThrow(
        /no down script for 0006_avatar_not_null/,
      );
      expect(await catalogSnapshot(db.pool)).toEqual(before);
      expect(await appliedVersions()).toHaveLength(exampleCount);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
