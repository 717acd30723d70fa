import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import * as realActivities from '../../activities/registry';
import { parsePlan, resolvePlan, type ResolvedPlan } from '../../src/plan';
import { metricsSinks, workflowsPath } from '../../src/temporal/worker';
import { TASK_QUEUE } from '../../workflows/definitions';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { widenPlanYaml } from '../support/orders';

export { routePercent, tableExists, userTriggers } from '../support/db-state';
export { seedOrders } from '../support/orders';
import { failFastWorkflowErrors, timeSkippingEnv, workflowBundle } from '../support/temporal';

/** The widen-orders plan with the given shift and stages tail, resolved against the test database. */
export async function widenPlan(db: TestDatabase, yamlTail = ''): Promise<ResolvedPlan> {
  const text = widenPlanYaml('widen_orders_id', `backfill:\n  batchSize: 100\n${yamlTail}`);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await resolvePlan(parsePlan(text, 'widen.yaml'), client);
  } finally {
    await client.end();
  }
}

/** Activities are the real ones; each call is recorded (name and order) before it runs. */
export function recordingActivities(calls: string[]): typeof realActivities {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(realActivities)) {
    wrapped[name] = async (...args: unknown[]) => {
      calls.push(name);
      return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
    };
  }
  return wrapped as typeof realActivities;
}

export function configureActivityEnv(db: TestDatabase): void {
  process.env.DATABASE_URL = db.url;
  process.env.CUTOVER_BACKUP_DIR = mkdtempSync(join(tmpdir(), 'cutover-wf-backups-'));
  delete process.env.CUTOVER_BACKUP_TARGET;
}

export async function createTestWorker(
  env: TestWorkflowEnvironment,
  activities: typeof realActivities,
  taskQueue = TASK_QUEUE,
): Promise<Worker> {
  return Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    workflowBundle: await workflowBundle(workflowsPath),
    activities,
    maxHeartbeatThrottleInterval: '1 second',
    sinks: metricsSinks,
    ...failFastWorkflowErrors,
  });
}

/**
 * A throwaway database whose URL the activities use, and the time-skipping server, for the test
 * file; `use` receives both before the first test.
 */
export function useWorkflowEnv(
  name: string,
  use: (db: TestDatabase, env: TestWorkflowEnvironment) => void,
): void {
  let db: TestDatabase | undefined;
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(name);
    configureActivityEnv(db);
    env = await timeSkippingEnv();
    use(db, env);
  });
  afterAll(async () => {
    await env?.teardown();
    await db?.drop();
  });
}
