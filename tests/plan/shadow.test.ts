import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  shadowBuildIndexes,
  shadowRun,
  shadowUndo,
  shadowValidate,
} from '../../src/steps/shadow/table';
import { catalogSnapshot } from '../../src/plan/catalog';
import { parsePlan, resolvePlan } from '../../src/plan/index';
import type { ResolvedPlan } from '../../src/plan/resolved';
import type { PlanLoadBudget } from '../../src/backfill/load-budget';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { exampleSchema } from './fixtures';

let db: TestDatabase;
let client: pg.PoolClient;
let plan: ResolvedPlan;

beforeAll(async () => {
  db = await createTestDatabase('shadow');
  await db.pool.query(exampleSchema);
  client = await db.pool.connect();
  plan = await resolvePlan(
    parsePlan(`
name: orders_v2_full
source: orders
target:
  table: orders_v2
  ddl: |
    CREATE TABLE orders_v2 (
      id bigint PRIMARY KEY,
      customer_id int NOT NULL REFERENCES customers_ref (id),
      total numeric(10,2) NOT NULL CONSTRAINT total_positive CHECK (total >= 0),
      note text UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX orders_v2_customer_idx ON orders_v2 (customer_id, created_at DESC);
mapping:
  up: { id: id::bigint }
  down: { id: id::int }
`),
    client,
  );
});

afterAll(async () => {
  client?.release();
  await db?.drop();
});

const indexes = async () =>
  (
    await client.query<{ name: string; valid: boolean }>(
      `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'orders_v2'::regclass ORDER BY 1`,
    )
  ).rows;
// From PostgreSQL 18 every NOT NULL is also a pg_constraint row (contype 'n'); the deferred
// objects are the other constraints, and NOT NULL is a column property on every major.
const constraints = async () =>
  (
    await client.query<{ name: string; validated: boolean }>(
      `SELECT conname AS name, convalidated AS validated FROM pg_constraint
        WHERE conrelid = 'orders_v2'::regclass AND contype <> 'n' ORDER BY 1`,
    )
  ).rows;

describe('shadow table', () => {
  it('is created with its key only, then gets every deferred index and constraint', async () => {
    const before = await catalogSnapshot(client);
    const preview = await shadowValidate(plan, { client });
    expect(preview.exists).toBe(false);
    expect(await catalogSnapshot(client)).toBe(before);
    expect(preview.deferred.map((d) => `${d.kind}:${d.name}`).sort()).toEqual([
      'check:total_positive',
      'foreign:orders_v2_customer_id_fkey',
      'index:orders_v2_customer_idx',
      'unique:orders_v2_note_key',
    ]);

    const run = await shadowRun(plan, { client });
    expect(run.created).toBe(true);
    expect(await indexes()).toEqual([{ name: 'orders_v2_pkey', valid: true }]);
    expect((await constraints()).map((c) => c.name)).toEqual(['orders_v2_pkey']);
    // A retried activity finds its own table and the same list.
    expect(await shadowRun(plan, { client })).toEqual({ created: false, deferred: run.deferred });

    await client.query(`INSERT INTO customers_ref VALUES (1), (2)`);
    await client.query(
      `INSERT INTO orders_v2 (id, customer_id, total, note) SELECT g, 1 + g % 2, g, 'n' || g FROM generate_series(1, 500) g`,
    );
    const built = await shadowBuildIndexes(plan, { client });
    expect(built.built.sort()).toEqual([
      'orders_v2_customer_id_fkey',
      'orders_v2_customer_idx',
      'orders_v2_note_key',
      'total_positive',
    ]);
    expect((await indexes()).every((i) => i.valid)).toBe(true);
    expect((await indexes()).map((i) => i.name)).toEqual([
      'orders_v2_customer_idx',
      'orders_v2_note_key',
      'orders_v2_pkey',
    ]);
    expect(await constraints()).toEqual([
      { name: 'orders_v2_customer_id_fkey', validated: true },
      { name: 'orders_v2_note_key', validated: true },
      { name: 'orders_v2_pkey', validated: true },
      { name: 'total_positive', validated: true },
    ]);
    const defs = await client.query<{ d: string }>(
      `SELECT pg_get_indexdef('orders_v2_customer_idx'::regclass) AS d`,
    );
    expect(defs.rows[0]!.d).toMatch(/\(customer_id, created_at DESC\)/);

    // Idempotent: a second run builds nothing.
    expect(await shadowBuildIndexes(plan, { client })).toEqual({
      built: [],
      rebuilt: [],
      skipped: expect.arrayContaining(['orders_v2_customer_idx', 'total_positive']),
    });
  });

  it('drops and rebuilds an INVALID leftover of an interrupted concurrent build', async () => {
    // What a killed CREATE INDEX CONCURRENTLY leaves behind.
    await client.query(
      `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'orders_v2_customer_idx'::regclass`,
    );
    const again = await shadowBuildIndexes(plan, { client });
    expect(again.rebuilt).toEqual(['orders_v2_customer_idx']);
    expect((await indexes()).every((i) => i.valid)).toBe(true);
  });

  it('builds under the load budget: at critical load the next build waits, saying why', async () => {
    await client.query(`DROP INDEX orders_v2_customer_idx`);
    const governed: ResolvedPlan = {
      ...plan,
      backfill: {
        ...plan.backfill,
        // Short windows (settings a plan file does not offer) so the test sees it within seconds.
        loadBudget: {
          enabled: true,
          maxAppSlowdown: 0.2,
          windowMs: 150,
          baselineMs: 300,
          rebaselineSeconds: 0,
          criticalLoad: { lockWaits: 1 },
        } satisfies PlanLoadBudget as ResolvedPlan['backfill']['loadBudget'],
      },
    };
    await client.query(`DROP TABLE IF EXISTS lock_me; CREATE TABLE lock_me (x int)`);
    const connect = async () => {
      const c = new pg.Client({ connectionString: db.url, application_name: 'synthetic-load' });
      await c.connect();
      return c;
    };
    const [holder, waiter] = [await connect(), await connect()];
    try {
      await holder.query('BEGIN; LOCK TABLE lock_me');
      const waiting = waiter.query('BEGIN; LOCK TABLE lock_me').catch(() => {});
      const beats: { building?: string | null; throttled?: string | null }[] = [];
      const env = new MockActivityEnvironment();
      env.on('heartbeat', (d: (typeof beats)[number]) => beats.push(d));
      const building = env.run(shadowBuildIndexes, governed, { client });
      const until = Date.now() + 60_000;
      while (!beats.some((b) => b.throttled === 'critical: 1 lock waits ≥ 1')) {
        if (Date.now() > until) throw new Error('the build was not held at critical load');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await indexes()).map((i) => i.name)).not.toContain('orders_v2_customer_idx');
      await holder.query('COMMIT');
      await waiting;
      await waiter.query('COMMIT');
      const result = (await building) as Awaited<ReturnType<typeof shadowBuildIndexes>>;
      expect(result.built).toEqual(['orders_v2_customer_idx']);
      expect((await indexes()).every((i) => i.valid)).toBe(true);
    } finally {
      await Promise.all([holder.end(), waiter.end()]);
      await client.query(`DROP TABLE IF EXISTS lock_me`);
    }
  });

  it('undo drops the table, twice harmlessly, and leaves the catalog as before', async () => {
    await shadowUndo(plan, { client });
    const afterUndo = await catalogSnapshot(client);
    expect(await shadowUndo(plan, { client })).toEqual({ dropped: false, note: 'already gone' });
    expect(await catalogSnapshot(client)).toBe(afterUndo);
    // Same catalog as a database where the shadow was never created.
    const fresh = await createTestDatabase('shadow_fresh');
    try {
      await fresh.pool.query(exampleSchema);
      const c = await fresh.pool.connect();
      try {
        expect(afterUndo).toBe(await catalogSnapshot(c));
      } finally {
        c.release();
      }
    } finally {
      await fresh.drop();
    }
  });

  it('refuses to take over or drop a table it did not create', async () => {
    await client.query(`CREATE TABLE orders_v2 (id bigint PRIMARY KEY)`);
    await expect(shadowRun(plan, { client })).rejects.toThrow(
      /exists but was not created by cutover/,
    );
    expect(await shadowUndo(plan, { client })).toMatchObject({ dropped: false });
    expect((await client.query(`SELECT to_regclass('orders_v2') AS r`)).rows[0].r).toBe(
      'orders_v2',
    );
    await client.query(`DROP TABLE orders_v2`);
  });
});
