import pg from 'pg';
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
