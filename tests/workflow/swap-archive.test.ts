/**
 * A table that takes the swap's archive name after the plan was checked (time-skipping server,
 * real activities, real PostgreSQL): the swap is refused inside the run with nothing changed, the
 * run rolls back, the status says so truthfully (failed, the cause, not swapped, no point of no
 * return), and every write the application made during the run is in the old table.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  approveSignal,
  statusQuery,
  TASK_QUEUE,
  type RunStatus,
} from '../../workflows/definitions';
import { blueGreen } from '../../workflows/blue-green';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { timeSkippingEnv } from '../support/temporal';
import {
  configureActivityEnv,
  createTestWorker,
  recordingActivities,
  seedOrders,
  userTriggers,
  widenPlan,
} from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;

const STAGES = `stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }, { kind: backfill }]
  - name: validate
    steps: [{ kind: verify }]
  - name: approve-swap
    steps: [{ kind: approval, gate: swap }]
  - name: swap
    steps: [{ kind: swap, archive: orders_taken }]
  - name: cleanup
    steps: [{ kind: cleanup }]
`;

beforeAll(async () => {
  db = await createTestDatabase('wfarchive');
  configureActivityEnv(db);
  env = await timeSkippingEnv();
  await seedOrders(db, 500);
});
afterAll(async () => {
  await env?.teardown();
  await db?.drop();
});

describe('an existing table with the archive name', () => {
  it('refuses the swap in the run: rolled back, reported as failed and not swapped, nothing lost', async () => {
    const plan = await widenPlan(db, STAGES);
    const calls: string[] = [];
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { error, status } = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(blueGreen, {
        taskQueue: TASK_QUEUE,
        workflowId: 'swap-archive-taken',
        args: [{ plan, settings: { rollbackWindowSeconds: 0 } }],
      });
      let s: RunStatus | undefined;
      for (let i = 0; i < 1200 && !s?.waitingGates.includes('swap'); i++) {
        s = await handle.query(statusQuery);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(s?.waitingGates).toEqual(['swap']);
      // The application writes on; meanwhile someone creates a table under the archive's name.
      await db.pool.query(
        `INSERT INTO orders (id, customer, amount_cents) VALUES (100001, 'during', 9)`,
      );
      await db.pool.query(`UPDATE orders SET amount_cents = 1234 WHERE id = 1`);
      await db.pool.query(`DELETE FROM orders WHERE id = 2`);
      await db.pool.query(`CREATE TABLE orders_taken (x int); INSERT INTO orders_taken VALUES (7)`);
      await handle.signal(approveSignal, { gate: 'swap' });
      const error = await handle.result().catch((e: unknown) => e);
      return { error, status: await handle.query(statusQuery) };
    });
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(
      /public\.orders_taken already exists, so the old table cannot be archived/,
    );
    expect(status.swap?.state).toBe('not-swapped');
    expect(status.pointOfNoReturn).toBeUndefined();
    expect(status.stepsDone).not.toContain('swap.swap');
    expect(status.undone).toEqual([
      'swap.swap',
      'prepare.backfill',
      'prepare.sync',
      'prepare.shadow',
    ]);
    // One attempt: a refusal is not retried.
    expect(calls.filter((c) => c === 'swapAttempt')).toHaveLength(1);
    const t = await db.pool.query(
      `SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass('orders')) AS kind,
              to_regclass('orders_v2') IS NULL AS gone,
              (SELECT count(*)::int FROM orders) AS n,
              (SELECT amount_cents FROM orders WHERE id = 1) AS one,
              (SELECT count(*)::int FROM orders WHERE id IN (2, 100001)) AS changed,
              (SELECT array_agg(x) FROM orders_taken) AS taken`,
    );
    expect(t.rows[0]).toEqual({
      kind: 'r',
      gone: true,
      n: 500,
      one: 1234,
      changed: 1,
      taken: [7],
    });
    expect(await userTriggers(db)).toBe(0);
  });
});
