import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { runCli } from '../support/cli';
import { exampleMigrationsDir, scratchMigrations } from '../support/migrations-dir';

let db: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase('cli');
  env = { DATABASE_URL: db.url, CUTOVER_MIGRATIONS_DIR: exampleMigrationsDir };
});
afterAll(async () => {
  await db.drop();
});
beforeEach(async () => {
  await db.pool.query(
    `DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP SCHEMA IF EXISTS cutover CASCADE`,
  );
});

/** Waits until a runner holds the migration advisory lock, so the next one must wait for it. */
const RUNNER_LOCK = 0x63757476; // src/migrate/advisory-lock.ts
const TEST_GATE = 4242;

/** Waits until the runners' advisory lock is held (granted) or waited for (not granted). */
async function runnerLock(granted: boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
        WHERE l.locktype = 'advisory' AND l.granted = $1 AND l.objid = $2
          AND d.datname = current_database()`,
      [granted, RUNNER_LOCK],
    );
    if (r.rows[0].n > 0) return;
    if (Date.now() > deadline)
      throw new Error(`no runner ${granted ? 'took' : 'waited for'} the migration lock`);
    await new Promise((res) => setTimeout(res, 20));
  }
}
const runnerLockHeld = () => runnerLock(true);

describe('cutover CLI: versioned migrations', () => {
  it('migrate, status, validate and rollback work end to end', async () => {
    const up = await runCli(['migrate', '--to', '0003'], env);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/applied 3 migration\(s\)/);
    const st = await runCli(['status'], env);
    expect(st.stdout).toMatch(/0003\s+create_user_preferences\s+applied/);
    expect(st.stdout).toMatch(/0004\s+add_user_avatar\s+pending/);
    const json = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    expect(json.current).toBe(3);
    expect((await runCli(['validate'], env)).code).toBe(0);
    const down = await runCli(['rollback', '--steps', '2'], env);
    expect(down.code).toBe(0);
    expect(JSON.parse((await runCli(['status', '--json'], env)).stdout).current).toBe(1);
  });

  it('two runners in two processes never interleave: one waits, the history has no duplicates', async () => {
    // The first runner's migration waits on a lock this test holds, so the second runner starts
    // while the first one is surely mid-run, however slow the machine is.
    const dir = scratchMigrations({
      '0001_slow.up.sql': `CREATE TABLE slow (id int PRIMARY KEY);\nSELECT pg_advisory_xact_lock(${TEST_GATE});`,
      '0001_slow.down.sql': 'DROP TABLE slow;',
      '0002_next.up.sql': 'CREATE TABLE next (id int PRIMARY KEY);',
      '0002_next.down.sql': 'DROP TABLE next;',
    });
    const gate = await db.pool.connect();
    try {
      await gate.query(`SELECT pg_advisory_lock($1)`, [TEST_GATE]);
      const a = runCli(['migrate', '--dir', dir, '--lock-timeout', '0'], env);
      await runnerLockHeld();
      const b = runCli(['migrate', '--dir', dir], env);
      await runnerLock(false);
      await gate.query(`SELECT pg_advisory_unlock($1)`, [TEST_GATE]);
      const [ra, rb] = await Promise.all([a, b]);
      expect(ra.code).toBe(0);
      expect(rb.code).toBe(0);
      expect(rb.stderr).toMatch(/waiting for another cutover runner/);
      expect(rb.stderr).toMatch(/up to date/);
      const h = await db.pool.query(
        `SELECT version, count(*)::int AS n FROM cutover.schema_migrations GROUP BY 1 ORDER BY 1`,
      );
      expect(h.rows).toEqual([
        { version: 1, n: 1 },
        { version: 2, n: 1 },
      ]);
    } finally {
      gate.release();
      rmSync(dir, { recursive: true });
    }
  });

  it('--no-wait fails at once while another runner holds the lock', async () => {
    const dir = scratchMigrations({
      '0001_slow.up.sql': `SELECT pg_advisory_xact_lock(${TEST_GATE});`,
      '0001_slow.down.sql': 'SELECT 1;',
    });
    const gate = await db.pool.connect();
    try {
      // The first runner waits on this test's lock, so it holds the runner lock until released.
      await gate.query(`SELECT pg_advisory_lock($1)`, [TEST_GATE]);
      const a = runCli(['migrate', '--dir', dir, '--lock-timeout', '0'], env);
      await runnerLockHeld();
      const b = await runCli(['migrate', '--dir', dir, '--no-wait'], env);
      await gate.query(`SELECT pg_advisory_unlock($1)`, [TEST_GATE]);
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(/another cutover runner holds the migration lock .*--no-wait/);
      expect((await a).code).toBe(0);
    } finally {
      gate.release();
      rmSync(dir, { recursive: true });
    }
  });

  it('validate exits 1 when an applied file changed', async () => {
    const dir = scratchMigrations();
    try {
      expect((await runCli(['migrate', '--dir', dir, '--to', '1'], env)).code).toBe(0);
      const file = join(dir, '0001_create_users.up.sql');
      writeFileSync(file, readFileSync(file, 'utf8').replace('NOT NULL UNIQUE', 'UNIQUE'));
      const r = await runCli(['validate', '--dir', dir], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/0001_create_users: the up script changed after it was applied/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('dry run prints the SQL and changes nothing', async () => {
    const r = await runCli(['migrate', '--dry-run', '--to', '2'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/-- 0001_create_users \(\d+ ms\)\nCREATE TABLE users/);
    expect(r.stdout).toMatch(/nothing was changed/);
    expect((await db.pool.query(`SELECT to_regnamespace('cutover') AS s`)).rows[0].s).toBeNull();
  });

  it('an unreachable database is one line on stderr, exit 1, no stack trace', async () => {
    const r = await runCli(['migrate'], {
      ...env,
      DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:1/none',
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^error: cannot connect to PostgreSQL at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/,
    );
    expect(r.stderr).not.toMatch(/secret|\n\s+at /);
    const verbose = await runCli(['--verbose', 'migrate'], {
      ...env,
      DATABASE_URL: 'postgres://127.0.0.1:1/none',
    });
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('usage errors exit 2; bad input exits 1 with a clear message', async () => {
    expect((await runCli(['migrate', '--bogus'], env)).code).toBe(2);
    expect((await runCli(['rollback', '--steps', 'x'], env)).code).toBe(2);
    const unknown = await runCli(['migrate', '--to', '42'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown target version 42/);
    const noDb = await runCli(['migrate'], { DATABASE_URL: '', CUTOVER_DATABASE_URL: '' });
    expect(noDb.code).toBe(1);
    expect(noDb.stderr).toMatch(/no database configured: set DATABASE_URL/);
  });

  it('every command has --help', async () => {
    for (const cmd of ['migrate', 'rollback', 'status', 'validate', 'new']) {
      const r = await runCli([cmd, '--help'], env);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`Usage: cutover ${cmd}`));
    }
    expect((await runCli(['migrate', '--help'], env)).stdout).toMatch(/--dry-run[\s\S]*Examples:/);
  });

  it('new writes the next numbered pair of files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cutover-new-'));
    try {
      const first = await runCli(['new', 'Add orders status', '--dir', dir], env);
      expect(first.code).toBe(0);
      expect(existsSync(join(dir, '0001_add_orders_status.up.sql'))).toBe(true);
      expect(existsSync(join(dir, '0001_add_orders_status.down.sql'))).toBe(true);
      await runCli(['new', 'second', '--dir', dir], env);
      expect(existsSync(join(dir, '0002_second.up.sql'))).toBe(true);
      expect((await runCli(['new', '!!!', '--dir', dir], env)).code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
