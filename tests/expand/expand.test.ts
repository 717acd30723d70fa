/**
 * Expand/contract operations against real PostgreSQL, each under concurrent application writes:
 * the writers must see no error, the operation must do what it says, its pre-flight must refuse
 * bad data naming the rows before anything changes, and its undo must leave the table as it was.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  runAddColumn,
  runAddConstraint,
  runBackfillColumn,
  runCreateIndex,
  runDeprecate,
  runDrop,
  runSetNotNull,
  undoAddColumn,
  undoAddConstraint,
  undoCreateIndex,
  undoSetNotNull,
  validateAddColumn,
  validateAddConstraint,
  validateBackfillColumn,
  validateCreateIndex,
  validateDrop,
  validateSetNotNull,
} from '../../src/expand';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { catalogSnapshot } from '../support/catalog';
import { createItems, startWriters } from './writers';

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('expand');
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});
beforeEach(async () => {
  await createItems(db.pool);
});

/** Runs `work` while three writers hit the table; asserts they saw no error. */
async function underWrites<T>(work: () => Promise<T>, newColumn?: string): Promise<T> {
  const writers = startWriters(db.url, 3, newColumn);
  await new Promise((r) => setTimeout(r, 200));
  try {
    return await work();
  } finally {
    await writers.stop();
    expect(writers.errors).toEqual([]);
    expect(writers.ops).toBeGreaterThan(0);
  }
}

const count = async (sql: string) => Number((await db.pool.query(sql)).rows[0].n);

describe('expand/contract operations (real PostgreSQL, concurrent writers)', () => {
  it('addColumn: nullable and constant-default columns are added under writes; a volatile default is refused with nothing changed; undo drops it', async () => {
    await underWrites(async () => {
      await validateAddColumn(client, { table: 'items', column: 'email_lower', type: 'text' });
      await runAddColumn(client, { table: 'items', column: 'email_lower', type: 'text' });
      await runAddColumn(client, { table: 'items', column: 'email_lower', type: 'text' }); // idempotent
      await runAddColumn(client, {
        table: 'items',
        column: 'state',
        type: 'text',
        default: `'active'`,
      });
    });
    expect(
      await count(`SELECT count(*) AS n FROM items WHERE state IS DISTINCT FROM 'active'`),
    ).toBe(0);
    const before = await catalogSnapshot(db.pool);
    for (const d of ['random()', 'clock_timestamp()', `gen_random_uuid()::text`])
      await expect(
        validateAddColumn(client, { table: 'items', column: 'v', type: 'text', default: d }),
      ).rejects.toThrow(/is volatile: it would rewrite every row under an exclusive lock/);
    await expect(
      validateAddColumn(client, { table: 'items', column: 'v', type: 'no_such_type' }),
    ).rejects.toThrow(/type "no_such_type" does not exist/);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
    await undoAddColumn(client, { table: 'items', column: 'state', type: 'text' });
    await undoAddColumn(client, { table: 'items', column: 'state', type: 'text' });
    expect(
      await count(
        `SELECT count(*) AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'state' AND NOT attisdropped`,
      ),
    ).toBe(0);
  });

  it('backfillColumn: keyset batches under writes leave every row right, touching only rows that need it', async () => {
    await runAddColumn(client, { table: 'items', column: 'email_lower', type: 'text' });
    await validateBackfillColumn(client, {
      table: 'items',
      column: 'email_lower',
      expression: 'lower(email)',
    });
    await expect(
      validateBackfillColumn(client, {
        table: 'items',
        column: 'email_lower',
        expression: 'lower(no_such)',
      }),
    ).rejects.toThrow(/column "no_such" does not exist/);
    const checkpoints: number[] = [];
    const done = await underWrites(
      () =>
        runBackfillColumn(
          client,
          { table: 'items', column: 'email_lower', expression: 'lower(email)', batchSize: 500 },
          undefined,
          { onBatch: (cp) => checkpoints.push(cp.rowsScanned) },
        ),
      'email_lower',
    );
    expect(
      await count(
        `SELECT count(*) AS n FROM items WHERE email_lower IS DISTINCT FROM lower(email)`,
      ),
    ).toBe(0);
    expect(done.batches).toBeGreaterThanOrEqual(40);
    expect(checkpoints).toEqual([...checkpoints].sort((a, b) => a - b));
    // A second run finds nothing to do.
    const again = await runBackfillColumn(client, {
      table: 'items',
      column: 'email_lower',
      expression: 'lower(email)',
    });
    expect(again.rowsUpdated).toBe(0);
  });

  it('setNotNull: the pre-flight names NULL rows; then CHECK NOT VALID → VALIDATE → SET NOT NULL under writes; undo drops it', async () => {
    await client.query(`ALTER TABLE items ADD COLUMN tag text`);
    await client.query(`UPDATE items SET tag = 't' WHERE id NOT IN (7, 9)`);
    const before = await catalogSnapshot(db.pool);
    await expect(validateSetNotNull(client, { table: 'items', column: 'tag' })).rejects.toThrow(
      'public.items.tag is NULL in rows with key 7, 9: fill them first (a backfillColumn step) before SET NOT NULL',
    );
    expect(await catalogSnapshot(db.pool)).toEqual(before);
    await client.query(
      `UPDATE items SET tag = 't' WHERE tag IS NULL; ALTER TABLE items ALTER COLUMN tag SET DEFAULT 't'`,
    );
    await underWrites(() => runSetNotNull(client, { table: 'items', column: 'tag' }));
    const col = await db.pool.query(
      `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'tag'`,
    );
    expect(col.rows[0].attnotnull).toBe(true);
    expect(
      await count(
        `SELECT count(*) AS n FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'`,
      ),
    ).toBe(0);
    await undoSetNotNull(client, { table: 'items', column: 'tag' });
    await undoSetNotNull(client, { table: 'items', column: 'tag' });
    const after = await db.pool.query(
      `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'tag'`,
    );
    expect(after.rows[0].attnotnull).toBe(false);
  });

  it('a long transaction holding the table makes a DDL step wait visibly, naming it, then proceed', async () => {
    await client.query(`ALTER TABLE items ADD COLUMN tag text DEFAULT 't'`);
    const holder = new pg.Client({ connectionString: db.url, application_name: 'long-report' });
    await holder.connect();
    const pid = (await holder.query(`SELECT pg_backend_pid() AS p`)).rows[0].p as number;
    await holder.query(`BEGIN; SELECT count(*) FROM items`);
    const waits: string[] = [];
    const running = runSetNotNull(
      client,
      { table: 'items', column: 'tag' },
      {
        lock: { lockTimeoutMs: 200, attempts: 50, initialBackoffMs: 50, maxBackoffMs: 200 },
        onWait: (m) => waits.push(m),
      },
    );
    const deadline = Date.now() + 60_000;
    while (!waits.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // While we wait, the application is not queued behind us: a write goes through at once.
    const t0 = Date.now();
    await db.pool.query(`UPDATE items SET n = n + 1 WHERE id = 1`);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await holder.query('COMMIT');
    await holder.end();
    await running;
    expect(waits[0]).toMatch(
      new RegExp(
        `waiting for a lock on public\\.items \\(attempt 1, next in \\d+ ms\\): pid ${pid} \\(transaction \\d+s old, idle in transaction\\): (BEGIN; )?SELECT count\\(\\*\\) FROM items`,
      ),
    );
  });

  it('createIndex: drops an INVALID leftover and builds CONCURRENTLY under writes; unique pre-flight names duplicates', async () => {
    await client.query(`UPDATE items SET n = 0 WHERE id IN (3, 4)`);
    await client.query(`CREATE TABLE dup AS SELECT 1`);
    // A unique concurrent build that fails on duplicates leaves an INVALID index behind.
    await client
      .query(`CREATE UNIQUE INDEX CONCURRENTLY items_email_n ON items (n)`)
      .catch(() => undefined);
    const invalid = await db.pool.query(
      `SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_email_n'::regclass`,
    );
    expect(invalid.rows[0].indisvalid).toBe(false);
    await expect(
      validateCreateIndex(client, {
        table: 'items',
        name: 'items_email_n',
        columns: ['n'],
        unique: true,
      }),
    ).rejects.toThrow(
      /public\.items has duplicates under the new unique index items_email_n: \(0\) \(2002 rows\), \(1\) \(2000 rows\)/,
    );
    await validateCreateIndex(client, {
      table: 'items',
      name: 'items_email_n',
      columns: ['email', 'n'],
    });
    await underWrites(() =>
      runCreateIndex(client, { table: 'items', name: 'items_email_n', columns: ['email', 'n'] }),
    );
    const valid = await db.pool.query(
      `SELECT indisvalid, pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indexrelid = 'items_email_n'::regclass`,
    );
    expect(valid.rows[0]).toEqual({ indisvalid: true, d: expect.stringMatching(/\(email, n\)/) });
    await undoCreateIndex(client, {
      table: 'items',
      name: 'items_email_n',
      columns: ['email', 'n'],
    });
    await undoCreateIndex(client, {
      table: 'items',
      name: 'items_email_n',
      columns: ['email', 'n'],
    });
    expect((await db.pool.query(`SELECT to_regclass('items_email_n') AS r`)).rows[0].r).toBeNull();
  });

  it('createIndex behind a long transaction: each timed-out concurrent build’s INVALID leftover is dropped, the wait is told, then it builds', async () => {
    const holder = new pg.Client({ connectionString: db.url, application_name: 'long-report' });
    await holder.connect();
    const pid = (await holder.query(`SELECT pg_backend_pid() AS p`)).rows[0].p as number;
    await holder.query(`BEGIN ISOLATION LEVEL REPEATABLE READ`);
    await holder.query(`SELECT count(*) FROM items`);
    const waits: string[] = [];
    const spec = { table: 'items', name: 'items_n_idx', columns: ['n'] };
    const running = runCreateIndex(client, spec, {
      lock: { lockTimeoutMs: 200, attempts: 50, initialBackoffMs: 50, maxBackoffMs: 200 },
      onWait: (m) => waits.push(m),
    });
    try {
      const deadline = Date.now() + 60_000;
      while (waits.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(waits[0]).toMatch(new RegExp(`waiting for a lock on public\\.items .*pid ${pid} `));
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    await running;
    const idx = await db.pool.query(
      `SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass`,
    );
    expect(idx.rows).toEqual([{ indisvalid: true }]);
    await undoCreateIndex(client, spec);
  });

  it('addConstraint: FK and CHECK go in NOT VALID then VALIDATE under writes; violating rows are named first', async () => {
    await client.query(
      `CREATE TABLE kinds (n int PRIMARY KEY); INSERT INTO kinds SELECT generate_series(0, 8)`,
    );
    const fk = {
      table: 'items',
      name: 'items_n_fk',
      foreignKey: { columns: ['n'], references: 'kinds', referencedColumns: ['n'] },
    };
    const before = await catalogSnapshot(db.pool);
    // n = 9 rows (every tenth) and the writers' n = 1 rows: 9 is missing from kinds.
    await expect(validateAddConstraint(client, fk)).rejects.toThrow(
      /public\.items has rows that items_n_fk would reject, with key 9, 19, 29, 39, 49, …: fix them first/,
    );
    await expect(
      validateAddConstraint(client, { table: 'items', name: 'n_small', check: 'n < 9' }),
    ).rejects.toThrow(/with key 9, 19, 29, 39, 49, …/);
    expect(await catalogSnapshot(db.pool)).toEqual(before);
    // The writers increment n, so every value they can reach must exist.
    await client.query(`INSERT INTO kinds SELECT generate_series(9, 100000)`);
    await validateAddConstraint(client, fk);
    await underWrites(async () => {
      await runAddConstraint(client, fk);
      await runAddConstraint(client, { table: 'items', name: 'n_nonneg', check: 'n >= 0' });
    });
    const cons = await db.pool.query(
      `SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype IN ('f', 'c') ORDER BY 1`,
    );
    expect(cons.rows).toEqual([
      { conname: 'items_n_fk', convalidated: true },
      { conname: 'n_nonneg', convalidated: true },
    ]);
    await undoAddConstraint(client, fk);
    await undoAddConstraint(client, fk);
    expect(
      await count(`SELECT count(*) AS n FROM pg_constraint WHERE conname = 'items_n_fk'`),
    ).toBe(0);
  });

  it('drop: refused before a deprecation, before its time, and without a way to know nothing reads it', async () => {
    await client.query(`ALTER TABLE items ADD COLUMN legacy text`);
    const spec = { table: 'items', column: 'legacy', minDeprecatedSeconds: 3600 };
    await expect(validateDrop(client, spec)).rejects.toThrow(
      'column public.items.legacy was never deprecated: run a deprecate step first, deploy code that no longer uses it, then drop it',
    );
    await runDeprecate(client, spec, new Date(Date.now() - 60_000));
    await expect(validateDrop(client, spec)).rejects.toThrow(
      /was deprecated 60 s ago; the drop waits until 3600 s/,
    );
    await expect(validateDrop(client, { ...spec, minDeprecatedSeconds: 30 })).rejects.toThrow(
      /pg_stat_statements is not installed, so cutover cannot see whether column public\.items\.legacy is still read: set confirmedUnused/,
    );
    const ok = {
      ...spec,
      minDeprecatedSeconds: 30,
      confirmedUnused: 'grep of app code by jane, 2026-11-29',
    };
    await validateDrop(client, ok);
    await underWrites(() => runDrop(client, ok));
    expect(
      await count(
        `SELECT count(*) AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'legacy' AND NOT attisdropped`,
      ),
    ).toBe(0);
    await validateDrop(client, ok); // already gone: nothing to refuse
  });
});
