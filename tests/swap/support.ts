import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { shadowBuildIndexes, shadowRun } from '../../src/steps/shadow/table';
import { installSync } from '../../src/steps/sync/triggers';
import { runBackfill } from '../../src/backfill/core';
import { parsePlan, resolvePlan, type ResolvedPlan } from '../../src/plan';

/** Resolves a plan and runs prepare (shadow, two-way sync, backfill, index build) on `client`. */
export async function prepare(client: pg.Client, yaml: string): Promise<ResolvedPlan> {
  const plan = await resolvePlan(parsePlan(yaml, 'plan.yaml'), client);
  await shadowRun(plan, { client });
  await installSync(client, { change: plan.change, directions: 'both' });
  await runBackfill(client, plan.change, { throttle: { batchSize: 500 } });
  await shadowBuildIndexes(plan, { client });
  return plan;
}

/** Rows in one query result and not the other, both ways (0 = same rows). */
export async function differing(client: pg.ClientBase, a: string, b: string): Promise<number> {
  const r = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ((${a} EXCEPT ALL ${b}) UNION ALL (${b} EXCEPT ALL ${a})) d`,
  );
  return r.rows[0]!.n;
}

/**
 * A throwaway database for the test file, with DATABASE_URL pointing at it (the swap activities
 * connect through it) and one open client; `use` receives both before the first test.
 */
export function useSwapDatabase(
  name: string,
  use: (db: TestDatabase, client: pg.Client) => void,
): void {
  let db: TestDatabase | undefined;
  let client: pg.Client | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(name);
    process.env.DATABASE_URL = db.url;
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    use(db, client);
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });
}
