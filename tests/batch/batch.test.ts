/**
 * Durable batch data migrations against real PostgreSQL: a JSON column split into a table of
 * its own, with bad items dead-lettered, a dry run that changes nothing, parallel key ranges,
 * and a SIGKILLed run resumed with no item applied twice.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  runBatchMigration,
  verifyBatchMigration,
  type BatchMigrationSpec,
} from '../../src/batch/migrate';
import {
  batchMigrateRun,
  batchMigrateUndo,
  type BatchMigrateResult,
} from '../../src/steps/batchMigrate';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { catalogSnapshot } from '../support/catalog';

let db: TestDatabase;
let client: pg.Client;
const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));

beforeAll(async () => {
  db = await createTestDatabase('batch');
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});
beforeEach(async () => {
  await client.query(`
    DROP SCHEMA IF EXISTS cutover CASCADE;
    DROP TABLE IF EXISTS profiles, addresses, applied;
    CREATE TABLE profiles (id int PRIMARY KEY, data jsonb NOT NULL);
    INSERT INTO profiles
      SELECT g, jsonb_build_object('city', 'City ' || (g % 50),
                                   'zip', CASE WHEN g % 997 = 0 THEN 'n/a' ELSE (10000 + g)::text END)
        FROM generate_series(1, 5000) g;
    CREATE TABLE addresses (profile_id int PRIMARY KEY, city text NOT NULL, zip int);
    -- Every write to addresses, by key: an item applied twice shows up as a count of 2.
    CREATE TABLE applied (profile_id int, n int);
    CREATE OR REPLACE FUNCTION count_applied() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO applied VALUES (NEW.profile_id, 1); RETURN NEW; END $$;
    CREATE TRIGGER count_applied AFTER INSERT OR UPDATE ON addresses
      FOR EACH ROW EXECUTE FUNCTION count_applied();`);
});

const split = (over: Partial<BatchMigrationSpec> = {}): BatchMigrationSpec => ({
  name: 'split_profiles',
  source: { table: 'profiles' },
  target: {
    table: 'addresses',
    columns: { profile_id: 'id', city: `data->>'city'`, zip: `(data->>'zip')::int` },
  },
  batchSize: 250,
  ...over,
});

const count = async (sql: string) => Number((await client.query(sql)).rows[0].n);
const BAD = [997, 1994, 2991, 3988, 4985];

describe('batch data migrations (real PostgreSQL)', () => {
  it('a dry run applies every batch in a rolled-back transaction: reports the bad items, changes nothing', async () => {
    const before = await catalogSnapshot(client);
    const p = await runBatchMigration(db.url, split({ dryRun: true }));
    expect(p.itemsDone).toBe(5000);
    expect(p.failures.map((f) => f.key)).toEqual(BAD.map((k) => `[${k}]`));
    expect(p.failures[0]!.error).toBe('invalid input syntax for type integer: "n/a"');
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(0);
    expect(await catalogSnapshot(client)).toEqual(before);
  });

  it('splits the JSON column over parallel ranges; bad items go to the dead-letter table; verification agrees', async () => {
    const p = await runBatchMigration(db.url, split({ concurrency: 3 }));
    expect(p.deadLetters).toBe(5);
    const dead = await client.query(
      `SELECT key, error, attempts FROM cutover.batch_dead_letters ORDER BY key`,
    );
    expect(dead.rows).toEqual(
      BAD.map((k) => ({
        key: [k],
        error: 'invalid input syntax for type integer: "n/a"',
        attempts: 3,
      })),
    );
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(4995);
    expect(
      await count(
        `SELECT count(*) AS n FROM (SELECT profile_id FROM applied GROUP BY 1 HAVING count(*) > 1) x`,
      ),
    ).toBe(0);
    expect(await verifyBatchMigration(client, split())).toEqual({
      sourceRows: 5000,
      targetRows: 4995,
      deadLetters: 5,
      differing: 0,
    });
    const ranges = await client.query(
      `SELECT range_no, done, items FROM cutover.batch_checkpoints ORDER BY 1`,
    );
    expect(ranges.rows.map((r) => r.done)).toEqual([true, true, true]);
    expect(ranges.rows.reduce((n, r) => n + Number(r.items), 0)).toBe(4995);
    // Running it again applies nothing: every range is done.
    await client.query(`TRUNCATE applied`);
    await runBatchMigration(db.url, split({ concurrency: 3 }));
    expect(await count(`SELECT count(*) AS n FROM applied`)).toBe(0);
  });

  it('verification notices a destination row that differs', async () => {
    await runBatchMigration(db.url, split());
    await client.query(`UPDATE addresses SET city = 'Elsewhere' WHERE profile_id = 42`);
    expect((await verifyBatchMigration(client, split())).differing).toBe(1);
  });

  it('a per-batch migrator module: its failing items are dead-lettered with the key and its message', async () => {
    await client.query(
      `UPDATE profiles SET data = data || '{"city": "Atlantis"}' WHERE id IN (7, 8)`,
    );
    const spec: BatchMigrationSpec = {
      name: 'split_by_module',
      source: { table: 'profiles', where: `data->>'zip' <> 'n/a'` },
      module: fixture('migrator.mjs'),
      batchSize: 500,
    };
    const p = await runBatchMigration(db.url, spec);
    expect(p.deadLetters).toBe(2);
    const dead = await client.query(
      `SELECT key, error FROM cutover.batch_dead_letters ORDER BY key`,
    );
    expect(dead.rows).toEqual([
      { key: [7], error: 'no such city for profile 7' },
      { key: [8], error: 'no such city for profile 8' },
    ]);
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(4993);
  });

  it('resumes after SIGKILL from the committed checkpoint: no item applied twice, none missed', async () => {
    const spec = split({ concurrency: 2, batchSize: 100 });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fixture('run-batch.ts'), db.url, JSON.stringify(spec), '150'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 90_000;
    for (;;) {
      const n = await client
        .query(`SELECT coalesce(sum(items), 0)::int AS n FROM cutover.batch_checkpoints`)
        .then(
          (r) => Number(r.rows[0].n),
          () => 0,
        );
      if (n >= 600) break;
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`child did not progress: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = await count(`SELECT count(*) AS n FROM addresses`);
    expect(before).toBeGreaterThanOrEqual(600);
    expect(before).toBeLessThan(4995);
    await runBatchMigration(db.url, spec);
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(4995);
    expect(
      await count(
        `SELECT count(*) AS n FROM (SELECT profile_id FROM applied GROUP BY 1 HAVING count(*) > 1) x`,
      ),
    ).toBe(0);
    expect((await verifyBatchMigration(client, spec)).differing).toBe(0);
  });

  it('refuses a bad spec before anything changes', async () => {
    const before = await catalogSnapshot(client);
    await expect(
      runBatchMigration(db.url, {
        ...split(),
        target: { table: 'addresses', columns: { city: `data->>'city'` } },
      }),
    ).rejects.toThrow(
      'batch migration split_profiles: target.columns must set the key of addresses (profile_id)',
    );
    await expect(
      runBatchMigration(
        db.url,
        split({ target: { table: 'addresses', columns: { profile_id: 'id', city: 'no_such' } } }),
      ),
    ).rejects.toThrow(/batch migration split_profiles: column "no_such" does not exist/);
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(0);
    const after = await catalogSnapshot(client);
    // ensureBatchSchema may have created the cutover schema's tables; nothing else changed.
    expect(
      Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, v.filter((x) => !x.includes('cutover'))]),
      ),
    ).toEqual(
      Object.fromEntries(
        Object.entries(before).map(([k, v]) => [k, v.filter((x) => !x.includes('cutover'))]),
      ),
    );
  });
});

describe('as a plan step: the batchMigrate activity', () => {
  const step = (over: Record<string, unknown> = {}) => ({
    kind: 'batchMigrate' as const,
    id: 'data.batchMigrate',
    migration: 'split_profiles',
    source: { table: 'profiles' },
    target: {
      table: 'addresses',
      columns: { profile_id: 'id', city: `data->>'city'`, zip: `(data->>'zip')::int` },
    },
    batchSize: 250,
    concurrency: 2,
    itemAttempts: 2,
    dryRun: false,
    ...over,
  });
  const run = (s: ReturnType<typeof step>) => {
    process.env.CUTOVER_DB_BATCHSTEP_URL = db.url;
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const done = env.run(batchMigrateRun, { connection: 'batchstep', step: s });
    return { beats, done: done as Promise<BatchMigrateResult> };
  };

  it('a dry run reports the items that would fail and changes nothing', async () => {
    const before = await catalogSnapshot(client);
    const r = await run(step({ dryRun: true })).done;
    expect(r.dryRun).toBe(true);
    expect(r.itemsDone).toBe(5000);
    expect(r.failures.map((f) => JSON.parse(f.key)[0]).sort((a, b) => a - b)).toEqual(BAD);
    expect(r.verification).toBeNull();
    expect(await count(`SELECT count(*) AS n FROM addresses`)).toBe(0);
    expect(await catalogSnapshot(client)).toEqual(before);
  });

  it('dead-letters bad items, verifies the rest, and fails over maxDeadLetters; its undo forgets the checkpoints', async () => {
    const { beats, done } = run(step());
    const r = await done;
    expect(r.deadLetters).toBe(BAD.length);
    expect(r.verification).toEqual({
      sourceRows: 5000,
      targetRows: 5000 - BAD.length,
      deadLetters: BAD.length,
      differing: 0,
    });
    expect(beats.length).toBeGreaterThan(0);
    // A second run with a limit: nothing left to do, but the dead letters are over it.
    await expect(run(step({ maxDeadLetters: 2 })).done).rejects.toThrow(
      /batch migration split_profiles: 5 items failed \(dead letters in cutover\.batch_dead_letters, more than maxDeadLetters 2\)/,
    );
    await batchMigrateUndo({ connection: 'batchstep', step: step() });
    await batchMigrateUndo({ connection: 'batchstep', step: step() }); // idempotent
    expect(
      await count(
        `SELECT count(*) AS n FROM cutover.batch_checkpoints WHERE migration = 'split_profiles'`,
      ),
    ).toBe(0);
    expect(
      await count(
        `SELECT count(*) AS n FROM cutover.batch_dead_letters WHERE migration = 'split_profiles'`,
      ),
    ).toBe(BAD.length);
    // Every item applied once.
    expect(
      await count(
        `SELECT count(*) AS n FROM (SELECT profile_id FROM applied GROUP BY 1 HAVING count(*) > 1) d`,
      ),
    ).toBe(0);
  });
});
