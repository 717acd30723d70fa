import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/db';
import {
  buildSyncSql,
  installSync,
  removeSync,
  syncRun,
  syncUndo,
  syncValidate,
  enableReverse,
  disableReverse,
} from '../../src/steps/sync/triggers';
import { objectName, syncNames } from '../../src/steps/sync/names';
import { accountsChange, createAccounts, mappingDifferences } from '../backfill/support';

let db: TestDatabase;
let client: pg.Client;
const change = accountsChange('acct', 'synctest');

beforeAll(async () => {
  db = await createTestDatabase('sync');
  process.env.CUTOVER_DB_SYNCTEST_URL = db.url;
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});
beforeEach(async () => {
  await removeSync(client, { change });
  await createAccounts(db.pool, 0);
  await db.pool.query(`
    DROP TABLE IF EXISTS fires;
    CREATE TABLE fires (tbl text, op text);
    CREATE OR REPLACE FUNCTION count_fire() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO fires VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$;
    CREATE TRIGGER app_count AFTER INSERT OR UPDATE OR DELETE ON accounts
      FOR EACH ROW EXECUTE FUNCTION count_fire();
    CREATE TRIGGER app_count AFTER INSERT OR UPDATE OR DELETE ON accounts_v2
      FOR EACH ROW EXECUTE FUNCTION count_fire();`);
});

async function fires(): Promise<Record<string, number>> {
  const r = await db.pool.query<{ k: string; n: number }>(
    `SELECT tbl || ':' || op AS k, count(*)::int AS n FROM fires GROUP BY 1`,
  );
  await db.pool.query('TRUNCATE fires');
  return Object.fromEntries(r.rows.map((x) => [x.k, x.n]));
}

async function catalogSnapshot(): Promise<string[]> {
  const r = await db.pool.query<{ x: string }>(`
    SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname AS x FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'function ' || n.nspname || '.' || p.proname || ' ' || md5(p.prosrc)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1`);
  return r.rows.map((x) => x.x);
}

describe('sync trigger names', () => {
  it('are deterministic and fit in 63 bytes with a hash suffix when long', () => {
    expect(objectName('cutover_sync_fwd', 'short')).toBe('cutover_sync_fwd_short');
    const long = 'x'.repeat(80);
    const a = objectName('cutover_sync_fwd', long);
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(63);
    expect(a).toBe(objectName('cutover_sync_fwd', long));
    expect(a).not.toBe(objectName('cutover_sync_fwd', long + 'y'));
    expect(syncNames({ name: 'A' }).guardSetting).not.toBe(syncNames({ name: 'a' }).guardSetting);
  });

  it('quotes identifiers in the generated SQL', () => {
    const odd = {
      ...change,
      source: { schema: 'public', table: 'we"ird; drop' },
    };
    const sql = buildSyncSql(odd, 'forward');
    expect(sql.createFunction).toContain('"public"."we""ird; drop"');
  });
});

describe('sync triggers', () => {
  it('forward: insert, non-key update, key update and delete reach the new table', async () => {
    await installSync(client, { change, directions: 'forward' });
    await db.pool.query(
      `INSERT INTO accounts VALUES (1, 1, 'ann', 10, NULL), (1, 2, 'bob', 20, 'x')`,
    );
    await db.pool.query(`UPDATE accounts SET balance = 11 WHERE id = 1`);
    await db.pool.query(`UPDATE accounts SET id = 3 WHERE id = 2`);
    await db.pool.query(`INSERT INTO accounts VALUES (2, 9, 'cy', 5, NULL)`);
    await db.pool.query(`DELETE FROM accounts WHERE id = 9`);
    const r = await db.pool.query(`SELECT * FROM accounts_v2 ORDER BY tenant, id`);
    expect(r.rows).toEqual([
      { tenant: 1, id: '1', full_name: 'ann', balance: '11', note: '' },
      { tenant: 1, id: '3', full_name: 'bob', balance: '20', note: 'x' },
    ]);
    expect(await mappingDifferences(db.pool)).toBe(0);
  });

  it('a statement that swaps keys between rows loses neither of them', async () => {
    await db.pool.query(`ALTER TABLE accounts DROP CONSTRAINT accounts_pkey,
      ADD PRIMARY KEY (tenant, id) DEFERRABLE INITIALLY DEFERRED`);
    await installSync(client, { change, directions: 'forward' });
    await db.pool.query(
      `INSERT INTO accounts VALUES (1, 1, 'ann', 1, NULL), (1, 2, 'bob', 2, NULL)`,
    );
    await db.pool.query(`UPDATE accounts SET id = 3 - id`);
    expect(await mappingDifferences(db.pool)).toBe(0);
    const r = await db.pool.query(`SELECT id, full_name FROM accounts_v2 ORDER BY id`);
    expect(r.rows).toEqual([
      { id: '1', full_name: 'bob' },
      { id: '2', full_name: 'ann' },
    ]);
  });

  it('reverse: writes to the new table flow back once, with no recursion', async () => {
    await installSync(client, { change, directions: 'both' });
    await db.pool.query(`INSERT INTO accounts VALUES (1, 1, 'ann', 10, NULL)`);
    expect(await fires()).toEqual({ 'accounts:INSERT': 1, 'accounts_v2:INSERT': 1 });

    await db.pool.query(`INSERT INTO accounts_v2 VALUES (1, 2, 'zed', 5, 'hi')`);
    await db.pool.query(`UPDATE accounts_v2 SET balance = balance + 1 WHERE id = 2`);
    await db.pool.query(`UPDATE accounts_v2 SET id = 7 WHERE id = 1`);
    // Each application write is applied exactly once on each side: a recursion would show up
    // as extra fires (and a non-idempotent +1 would be applied twice).
    expect(await fires()).toEqual({
      'accounts_v2:INSERT': 1,
      'accounts:INSERT': 2,
      'accounts_v2:UPDATE': 2,
      'accounts:UPDATE': 1,
      'accounts:DELETE': 1,
    });
    const old = await db.pool.query(
      `SELECT tenant, id, name, balance, note FROM accounts ORDER BY id`,
    );
    expect(old.rows).toEqual([
      { tenant: 1, id: 2, name: 'zed', balance: 6, note: 'hi' },
      { tenant: 1, id: 7, name: 'ann', balance: 10, note: null },
    ]);
    await db.pool.query(`DELETE FROM accounts_v2 WHERE id = 2`);
    expect(await fires()).toEqual({ 'accounts_v2:DELETE': 1, 'accounts:DELETE': 1 });
    expect(await mappingDifferences(db.pool)).toBe(0);
  });

  it('both directions in one transaction stay synced (the guard is cleared after each copy)', async () => {
    await installSync(client, { change, directions: 'both' });
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO accounts_v2 VALUES (3, 1, 'new side', 1, '')`);
      await c.query(`INSERT INTO accounts VALUES (3, 2, 'old side', 2, NULL)`);
      await c.query(`UPDATE accounts_v2 SET full_name = 'renamed' WHERE id = 2`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    expect(await mappingDifferences(db.pool)).toBe(0);
    const r = await db.pool.query(`SELECT name FROM accounts WHERE id = 2`);
    expect(r.rows[0].name).toBe('renamed');
  });

  it('application triggers that write the old table are still synced (why not pg_trigger_depth)', async () => {
    await installSync(client, { change, directions: 'both' });
    await db.pool.query(`
      CREATE TABLE signups (tenant int, id int, name text);
      CREATE FUNCTION signup_to_account() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO accounts VALUES (NEW.tenant, NEW.id, NEW.name, 0, NULL); RETURN NULL; END $$;
      CREATE TRIGGER signup AFTER INSERT ON signups FOR EACH ROW EXECUTE FUNCTION signup_to_account();`);
    try {
      await db.pool.query(`INSERT INTO signups VALUES (4, 40, 'via app trigger')`);
      const r = await db.pool.query(
        `SELECT full_name FROM accounts_v2 WHERE tenant = 4 AND id = 40`,
      );
      expect(r.rows).toEqual([{ full_name: 'via app trigger' }]);
    } finally {
      await db.pool.query(`DROP TABLE signups; DROP FUNCTION signup_to_account()`);
    }
  });

  it('a failed subtransaction does not leave the guard set', async () => {
    await installSync(client, { change, directions: 'both' });
    await db.pool.query(`INSERT INTO accounts VALUES (1, 1, 'ann', 1, NULL)`);
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SAVEPOINT s');
      // The reverse trigger sets the guard, then its copy fails on the old table's int range:
      // rolling back to the savepoint must also roll back the guard.
      await expect(
        c.query(`INSERT INTO accounts_v2 VALUES (1, 5000000000, 'too big', 1, '')`),
      ).rejects.toThrow(/out of range/);
      await c.query('ROLLBACK TO SAVEPOINT s');
      await c.query(`INSERT INTO accounts VALUES (1, 2, 'after', 1, NULL)`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    expect(await mappingDifferences(db.pool)).toBe(0);
  });

  it('undo leaves the catalog as before and is harmless twice; reverse on and off', async () => {
    const before = await catalogSnapshot();
    await syncValidate({ change });
    await expect(syncRun({ change, directions: 'both' })).resolves.toEqual({
      installed: ['forward', 'reverse'],
    });
    await syncRun({ change, directions: 'both' }); // idempotent install
    const installed = await catalogSnapshot();
    // forward + reverse trigger and function, TRUNCATE guard function and its two triggers
    expect(installed.length).toBe(before.length + 7);
    await disableReverse({ change });
    expect((await catalogSnapshot()).length).toBe(before.length + 5);
    await enableReverse({ change });
    expect(await catalogSnapshot()).toEqual(installed);
    await syncUndo({ change });
    expect(await catalogSnapshot()).toEqual(before);
    await syncUndo({ change });
    expect(await catalogSnapshot()).toEqual(before);
  });

  it('bad input is rejected by validation and installs nothing', async () => {
    const before = await catalogSnapshot();
    const bad = {
      ...change,
      up: change.up.map((m) => (m.column === 'balance' ? { ...m, expression: '"nope" + 1' } : m)),
    };
    await expect(syncRun({ change: bad })).rejects.toThrow(/forward mapping does not compile/);
    const missing = { ...change, target: { schema: 'public', table: 'missing' } };
    await expect(syncRun({ change: missing })).rejects.toThrow(/public.missing does not exist/);
    const noDown = { ...change, down: undefined };
    await expect(syncRun({ change: noDown, directions: 'both' })).rejects.toThrow(
      /no down mapping/,
    );
    expect(await catalogSnapshot()).toEqual(before);
  });
});
