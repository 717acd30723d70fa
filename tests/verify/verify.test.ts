import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { verify, verifyTables, runSqlChecks, sqlcheck } from '../../src/steps/verify/tables';
import { checkPlan, loadPlanFile, parsePlan, resolvePlan } from '../../src/plan/index';
import type { ResolvedChange } from '../../src/plan/types';
import { createTestDatabase, type TestDatabase } from '../support/db';

let db: TestDatabase;
let client: pg.PoolClient;
let orders: ResolvedChange;
let composite: ResolvedChange;

/** Copies source rows into the target with the plan's up mapping, as a finished backfill would. */
async function copy(change: ResolvedChange): Promise<void> {
  const cols = change.up.map((m) => `"${m.column}"`).join(', ');
  const exprs = change.up.map((m) => m.expression).join(', ');
  await client.query(
    `INSERT INTO ${change.target.schema}.${change.target.table} (${cols}) SELECT ${exprs} FROM ${change.source.schema}.${change.source.table}`,
  );
}

beforeAll(async () => {
  db = await createTestDatabase('verify');
  // Activities open their own connection by name, never by URL.
  process.env.CUTOVER_DB_VERIFYTEST_URL = db.url;
  client = await db.pool.connect();
  await client.query(`
    CREATE TABLE orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL, note text);
    INSERT INTO orders SELECT g, g / 7.0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END
      FROM generate_series(1, 3000) g;
    CREATE TABLE composite (tenant int NOT NULL, seq int NOT NULL, v text, PRIMARY KEY (tenant, seq));
    INSERT INTO composite SELECT t, s, md5((t * s)::text) FROM generate_series(1, 3) t, generate_series(1, 400) s;
    CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE);
    INSERT INTO customers SELECT g, 'First' || g || ' Last' || g, 'c' || g || '@x' FROM generate_series(1, 700) g;
  `);
  const widen = await loadPlanFile('plans/widen-orders-id.yaml');
  widen.verify.sqlChecks = [];
  widen.source = 'orders';
  orders = (await resolvePlan(widen, client)).change;
  composite = (
    await resolvePlan(
      parsePlan(`name: c2\nsource: composite\ntarget: { table: composite_v2, like: source }\n`),
      client,
    )
  ).change;
  for (const c of [orders, composite]) {
    await client.query(`CREATE TABLE ${c.target.table} (LIKE ${c.source.table} INCLUDING ALL)`);
    c.connection = 'verifytest';
  }
  await client.query(`ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint`);
  await copy(orders);
  await copy(composite);
});

afterAll(async () => {
  client?.release();
  await db?.drop();
});

describe('exact verification', () => {
  beforeEach(async () => {
    // Every test starts from identical tables.
    await client.query(`TRUNCATE orders_v2, composite_v2`);
    await copy(orders);
    await copy(composite);
  });

  it('passes on identical tables under the mapping (int → bigint key)', async () => {
    const progress: number[] = [];
    const r = await verifyTables(orders, {
      chunkSize: 500,
      onProgress: (p) => progress.push(p.chunks),
    });
    expect(r).toMatchObject({ ok: true, sourceRows: 3000, targetRows: 3000, mismatches: [] });
    expect(r.chunks).toBe(7); // six full chunks, then the open-ended tail
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await expect(verify({ change: orders, verify: { chunkSize: 700 } })).resolves.toMatchObject({
      ok: true,
    });
  });

  it('passes with a computed mapping (split-name example plan)', async () => {
    const change = (await resolvePlan(await loadPlanFile('plans/split-name.yaml'), client)).change;
    change.connection = 'verifytest';
    await client.query(
      `CREATE TABLE customers_v2 (id integer PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, email text NOT NULL)`,
    );
    try {
      await copy(change);
      expect(await verifyTables(change, { chunkSize: 300 })).toMatchObject({
        ok: true,
        sourceRows: 700,
      });
      await client.query(`UPDATE customers_v2 SET last_name = 'Other' WHERE id = 333`);
      const r = await verifyTables(change, { chunkSize: 300 });
      expect(r.mismatches).toEqual([
        expect.objectContaining({
          range: '(id) > (300) and (id) <= (600)',
          differences: [{ key: ['333'], problem: 'different' }],
        }),
      ]);
    } finally {
      await client.query(`DROP TABLE customers_v2`);
    }
  });

  it('an exact copy that lost data fails: down(new row) must give the old row back', async () => {
    await client.query(`
      CREATE TABLE codes (id int PRIMARY KEY, s text);
      INSERT INTO codes SELECT g, CASE WHEN g IN (77, 615) THEN 'abcdefghij' ELSE 'c' || g END
        FROM generate_series(1, 1000) g;
      CREATE TABLE codes_v2 (id int PRIMARY KEY, s varchar(5))`);
    try {
      const plan = parsePlan(
        `name: codes5\nsource: codes\ntarget: { table: codes_v2x, like: source, alter: ["ALTER TABLE codes_v2x ALTER COLUMN s TYPE varchar(5)"] }\nmapping: { up: { s: "s::varchar(5)" }, down: {} }\n`,
      );
      // Resolved without the pre-flight (which would refuse it): as a copy made by hand would be.
      const lossy = (await checkPlan(plan, client, { preflight: false })).plan!.change;
      lossy.target = { schema: 'public', table: 'codes_v2' };
      lossy.connection = 'verifytest';
      await copy(lossy);
      const r = await verifyTables(lossy, { chunkSize: 300 });
      expect(r.ok).toBe(false);
      expect(r.mismatches.flatMap((m) => m.differences)).toEqual([
        { key: ['77'], problem: 'different' },
        { key: ['615'], problem: 'different' },
      ]);
      // Declared lossy: the copy is what the plan asked for.
      expect((await verifyTables({ ...lossy, lossy: 'junk codes' }, { chunkSize: 300 })).ok).toBe(
        true,
      );
    } finally {
      await client.query(`DROP TABLE codes, codes_v2`);
    }
  });

  it('detects a corrupted row and names its key range and key', async () => {
    await client.query(`UPDATE orders_v2 SET total = total + 0.01 WHERE id = 1234`);
    const r = await verifyTables(orders, { chunkSize: 500 });
    expect(r.ok).toBe(false);
    expect(r.mismatches).toEqual([
      {
        after: ['1000'],
        upTo: ['1500'],
        range: '(id) > (1000) and (id) <= (1500)',
        sourceRows: 500,
        targetRows: 500,
        differences: [{ key: ['1234'], problem: 'different' }],
      },
    ]);
  });

  it('detects a NULL turned into an empty string', async () => {
    await client.query(`UPDATE orders_v2 SET note = '' WHERE id = 10`);
    const r = await verifyTables(orders, { chunkSize: 500 });
    expect(r.mismatches.map((m) => m.differences)).toEqual([
      [{ key: ['10'], problem: 'different' }],
    ]);
  });

  it('detects a missing row', async () => {
    await client.query(`DELETE FROM orders_v2 WHERE id = 42`);
    const r = await verifyTables(orders, { chunkSize: 500 });
    expect(r.mismatches).toEqual([
      expect.objectContaining({
        range: '(id) <= (500)',
        sourceRows: 500,
        targetRows: 499,
        differences: [{ key: ['42'], problem: 'missing in target' }],
      }),
    ]);
  });

  it('detects extra rows, also beyond the last source key and before the first', async () => {
    await client.query(`INSERT INTO orders_v2 (id, total) VALUES (-5, 1), (99999, 1)`);
    await client.query(`DELETE FROM orders WHERE id = 2222`);
    try {
      const r = await verifyTables(orders, { chunkSize: 1000 });
      expect(r.mismatches.map((m) => [m.range, m.differences])).toEqual([
        ['(id) <= (1000)', [{ key: ['-5'], problem: 'extra in target' }]],
        // 999 source rows left after 2000: the last chunk is open-ended.
        [
          '(id) > (2000)',
          [
            { key: ['2222'], problem: 'extra in target' },
            { key: ['99999'], problem: 'extra in target' },
          ],
        ],
      ]);
    } finally {
      await client.query(
        `INSERT INTO orders SELECT id::int, total, note FROM orders_v2 WHERE id = 2222`,
      );
    }
  });

  it('the activity fails non-retryably with the range in its message', async () => {
    await client.query(`UPDATE orders_v2 SET note = 'tampered' WHERE id = 2500`);
    const err = await verify({ change: orders, verify: { chunkSize: 500 } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.nonRetryable).toBe(true);
    expect(failure.type).toBe('VerificationMismatch');
    expect(failure.message).toMatch(
      /\(id\) > \(2000\) and \(id\) <= \(2500\): source 500 rows, target 500 rows; differing keys: id=2500 \(different\)/,
    );
  });

  it('verifies one key range of a split', async () => {
    await client.query(`DELETE FROM orders_v2 WHERE id = 10`); // outside the range
    const r = await verifyTables(orders, { chunkSize: 400, after: ['1500'], upTo: ['2600'] });
    expect(r).toMatchObject({ ok: true, sourceRows: 1100, targetRows: 1100 });
  });

  it('works with composite keys', async () => {
    expect(await verifyTables(composite, { chunkSize: 250 })).toMatchObject({
      ok: true,
      sourceRows: 1200,
      targetRows: 1200,
    });
    await client.query(`UPDATE composite_v2 SET v = 'x' WHERE tenant = 2 AND seq = 17`);
    await client.query(`DELETE FROM composite_v2 WHERE tenant = 3 AND seq = 400`);
    const r = await verifyTables(composite, { chunkSize: 250 });
    expect(r.mismatches.map((m) => [m.range, m.differences])).toEqual([
      [
        '(tenant, seq) > (1, 250) and (tenant, seq) <= (2, 100)',
        [{ key: ['2', '17'], problem: 'different' }],
      ],
      ['(tenant, seq) > (3, 200)', [{ key: ['3', '400'], problem: 'missing in target' }]],
    ]);
  });

  it('never raises a false alarm while synced writes run concurrently', async () => {
    // A minimal forward sync (the real triggers live in src/steps/sync/triggers.ts).
    await client.query(`
      CREATE FUNCTION test_sync() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN DELETE FROM orders_v2 WHERE id = OLD.id; END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
          INSERT INTO orders_v2 (id, total, note) VALUES (NEW.id, NEW.total, NEW.note);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER test_sync AFTER INSERT OR UPDATE OR DELETE ON orders
        FOR EACH ROW EXECUTE FUNCTION test_sync();`);
    const writer = await db.pool.connect();
    let stop = false;
    let writes = 0;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const id = 1 + ((i * 7919) % 3000);
        await writer.query(
          `WITH d AS (DELETE FROM orders WHERE id = $1 RETURNING *)
           INSERT INTO orders SELECT id, total + 1, note FROM d`,
          [id],
        );
        await writer.query(`UPDATE orders SET note = md5(random()::text) WHERE id = $1`, [
          3001 - id,
        ]);
        await writer.query(
          `INSERT INTO orders VALUES ($1, 1, 'new') ON CONFLICT (id) DO UPDATE SET total = orders.total + 1`,
          [5000 + (i % 50)],
        );
        writes += 3;
      }
    })();
    try {
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await verifyTables(orders, { chunkSize: 100 }));
      stop = true;
      await load;
      expect(writes).toBeGreaterThan(0);
      expect(runs.map((r) => r.mismatches)).toEqual([[], [], []]);
    } finally {
      stop = true;
      await load.catch(() => {});
      writer.release();
      await client.query(
        `DROP TRIGGER test_sync ON orders; DROP FUNCTION test_sync(); DELETE FROM orders WHERE id > 3000; DELETE FROM orders_v2 WHERE id > 3000`,
      );
    }
  });
});

describe('sql checks', () => {
  it('compare the first value with expect, read-only', async () => {
    const results = await runSqlChecks('verifytest', [
      { name: 'count', sql: 'SELECT count(*) FROM orders', expect: 3000 },
      { name: 'bool', sql: 'SELECT bool_and(total >= 0) FROM orders', expect: true },
      { name: 'wrong', sql: "SELECT 'a'", expect: 'b' },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, false]);
    await expect(
      sqlcheck({
        change: { connection: 'verifytest' },
        checks: [{ name: 'wrong', sql: "SELECT 'a'", expect: 'b' }],
      }),
    ).rejects.toThrow(/"wrong" returned "a", expected "b"/);
    await expect(
      runSqlChecks('verifytest', [
        { name: 'w', sql: 'SELECT 1 FROM (DELETE FROM orders RETURNING 1) d', expect: 1 },
      ]),
    ).rejects.toThrow();
    expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(3000);
  });
});

describe('inside an activity', () => {
  it('heartbeats its checkpoint and resumes from the last one', async () => {
    const { MockActivityEnvironment } = await import('@temporalio/testing');
    const env = new MockActivityEnvironment();
    const beats: Array<{ after: string[] | null; chunks: number }> = [];
    env.on('heartbeat', (d: { after: string[] | null; chunks: number }) =>
      beats.push(JSON.parse(JSON.stringify(d))),
    );
    const full = await env.run(verify, { change: orders, verify: { chunkSize: 1000 } });
    expect(full).toMatchObject({ ok: true, chunks: 4, sourceRows: 3000 });
    // A slow chunk on a loaded machine may let the 2 s timer repeat the latest checkpoint.
    const afters = beats
      .map((b) => b.after)
      .filter((a, i, all) => i === 0 || JSON.stringify(a) !== JSON.stringify(all[i - 1]));
    expect(afters).toEqual([['1000'], ['2000'], ['3000'], null]);

    // A retried attempt starts after the checkpoint its predecessor heartbeated.
    const retry = new MockActivityEnvironment({
      heartbeatDetails: {
        after: ['2000'],
        chunks: 2,
        sourceRows: 2000,
        targetRows: 2000,
        mismatches: [],
      },
    });
    const resumed = await retry.run(verify, { change: orders, verify: { chunkSize: 1000 } });
    expect(resumed).toMatchObject({ ok: true, chunks: 4, sourceRows: 3000, targetRows: 3000 });
  });
});
