import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import * as realActivities from '../../activities/registry';
import { parsePlan, resolvePlan, type ResolvedPlan } from '../../src/plan';
import { workflowsPath } from '../../src/temporal/worker';
import { TASK_QUEUE } from '../../workflows/definitions';
import type { TestDatabase } from '../support/db';

export { routePercent, tableExists, userTriggers } from '../support/db-state';
import { failFastWorkflowErrors, workflowBundle } from '../support/temporal';

/** An orders table like the example app's, with `rows` rows. */
export async function seedOrders(db: TestDatabase, rows: number): Promise<void> {
  await db.pool.query(`
    DROP TABLE IF EXISTS orders_v2, orders, orders_archived CASCADE;
    DROP SCHEMA IF EXISTS cutover CASCADE;
    CREATE TABLE orders (
      id integer PRIMARY KEY,
      customer text NOT NULL,
      amount_cents integer NOT NULL CHECK (amount_cents >= 0),
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX orders_customer_idx ON orders (customer);
    INSERT INTO orders (id, customer, amount_cents)
      SELECT g, 'customer-' || (g % 97), g * 10 FROM generate_series(1, ${Number(rows)}) g;`);
}

/** The widen-orders plan with the given shift and stages tail, resolved against the test database. */
export async function widenPlan(db: TestDatabase, yamlTail = ''): Promise<ResolvedPlan> {
  const text = `
name: widen_orders_id
source: public.orders
target:
  table: orders_v2
  like: source
  alter:
    - ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint
mapping:
  up: {}
  down: {}
backfill:
  batchSize: 100
${yamlTail}`;
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
    ...failFastWorkflowErrors,
  });
}
