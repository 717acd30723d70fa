/**
 * A rename plan (finish: rename) through the real workflow on the time-skipping server, with real
 * activities and real PostgreSQL: the run ends with the new table under its own name and the old
 * name gone after cleanup; an abort inside the rollback window renames back, and every write made
 * through the old name's view or the new name is in the old table afterwards; the status says
 * what happened.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { abortSignal, statusQuery, TASK_QUEUE, type RunStatus } from '../../workflows/definitions';
import { renderReport } from '../../src/cli/render-status';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import type { TestDatabase } from '../support/db';
import {
  createTestWorker,
  recordingActivities,
  routePercent,
  seedOrders,
  userTriggers,
  widenPlan,
  useWorkflowEnv,
} from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;

// No traffic steps: the rename itself sends every key to the new table.
const RENAME = `finish: rename
shift:
  steps: []
`;

useWorkflowEnv('wfrename', (d, e) => {
  db = d;
  env = e;
});
beforeEach(async () => {
  calls = [];
  await seedOrders(db, 300);
});

const start = (input: BlueGreenInput) =>
  env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: `rename-test-${++runNo}`,
    args: [input],
  });

const relkind = async (name: string) =>
  (
    await db.pool.query<{ k: string | null }>(
      `SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)) AS k`,
      [name],
    )
  ).rows[0]!.k;

const archives = async () =>
  (
    await db.pool.query<{ relname: string }>(
      `SELECT relname FROM pg_class WHERE relname LIKE 'orders\\_old\\_%' AND relkind = 'r'`,
    )
  ).rows.map((r) => r.relname);

const differing = async (a: string, b: string) =>
  (
    await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ((SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b})
         UNION ALL (SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a})) d`,
    )
  ).rows[0]!.n;

describe('a rename plan through the workflow', () => {
  it('completes: the new table keeps its name, the old name is gone after cleanup', async () => {
    const plan = await widenPlan(db, RENAME);
    expect(plan.stages.flatMap((s) => s.steps.map((st) => st.kind))).toContain('rename');
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { result, status } = await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 86_400 },
      });
      const result = await handle.result();
      return { result, status: await handle.query(statusQuery) };
    });
    expect(result.outcome).toBe('completed');
    expect(calls).toContain('renameAttempt');
    expect(calls).not.toContain('swapAttempt');
    expect(status.swap).toMatchObject({ state: 'finished', mode: 'rename' });
    expect(await relkind('orders')).toBeNull();
    expect(await relkind('orders_v2')).toBe('r');
    const [archive, ...more] = await archives();
    expect(more).toEqual([]);
    expect(archive).toBe(status.swap!.archive);
    expect(await differing('orders_v2', archive!)).toBe(0);
    expect(await userTriggers(db)).toBe(0);
    expect(await routePercent(db, 'widen_orders_id')).toBe(100);
  });

  it('an abort inside the rollback window renames back: the old table has every write', async () => {
    const plan = await widenPlan(db, RENAME);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { result, status, during } = await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 86_400 },
      });
      let s: RunStatus | undefined;
      for (let i = 0; i < 1200; i++) {
        s = await handle.query(statusQuery);
        if (s.windowEndsAt !== undefined && s.swap?.state === 'swapped') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(s?.windowEndsAt, 'the rollback window').toBeDefined();
      const during = {
        orders: await relkind('orders'),
        percent: await routePercent(db, 'widen_orders_id'),
        routeInStatus: s!.routePercent,
      };
      // Code not deployed yet writes the old name (the view), new code the new one.
      await db.pool.query(
        `INSERT INTO orders (id, customer, amount_cents) VALUES (900001, 'old code', 5)`,
      );
      await db.pool.query(`UPDATE orders SET amount_cents = 777 WHERE id = 3`);
      await db.pool.query(`DELETE FROM orders WHERE id = 4`);
      await db.pool.query(
        `INSERT INTO orders_v2 (id, customer, amount_cents) VALUES (900002, 'new code', 6)`,
      );
      await db.pool.query(`UPDATE orders_v2 SET customer = 'renamed' WHERE id = 5`);
      await handle.signal(abortSignal, { reason: 'the new release misbehaves' });
      const result = await handle.result();
      return { result, status: await handle.query(statusQuery), during };
    });
    expect(during).toEqual({ orders: 'v', percent: 100, routeInStatus: 100 });
    expect(result.outcome).toBe('rolled-back');
    expect(result.undone).toContain('rename.rename');
    expect(calls).toContain('renameBackAttempt');
    expect(status.swap).toMatchObject({ state: 'swapped-back', mode: 'rename' });
    // `cutover status` says it in the rename's words.
    const rendered = renderReport({
      workflowId: 'rename-test',
      runStatus: 'COMPLETED',
      status,
      activities: [],
    });
    expect(rendered).toMatch(/rename +renamed-back: old table to be archived as orders_old_\d{14}/);
    expect(status.routePercent).toBe(0);
    expect(status.pointOfNoReturn).toBeUndefined();
    // The old table is back under its name with every write; the new table is gone.
    expect(await relkind('orders')).toBe('r');
    expect(await relkind('orders_v2')).toBeNull();
    expect(await archives()).toEqual([]);
    const rows = await db.pool.query(
      `SELECT id, customer, amount_cents FROM orders WHERE id IN (3, 4, 5, 900001, 900002) ORDER BY id`,
    );
    expect(rows.rows).toEqual([
      { id: 3, customer: expect.any(String), amount_cents: 777 },
      { id: 5, customer: 'renamed', amount_cents: expect.any(Number) },
      { id: 900001, customer: 'old code', amount_cents: 5 },
      { id: 900002, customer: 'new code', amount_cents: 6 },
    ]);
    expect(
      (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM orders`)).rows[0]!.n,
    ).toBe(300 + 2 - 1);
    expect(await userTriggers(db)).toBe(0);
    expect(await routePercent(db, 'widen_orders_id')).toBe(0);
  });

  it('a command router hears the finish after its commit, and the way back', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'cutover-rename-router-')), 'seen');
    const router = {
      kind: 'command' as const,
      command: `echo "$CUTOVER_PERCENT $CUTOVER_SWAPPED" >> '${out}'`,
      timeoutMs: 5000,
    };
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').trim().split('\n') : []);
    const worker = await createTestWorker(env, recordingActivities(calls));

    // A rename, aborted in its window: told 100% after the rename, 0% after the rename-back.
    const renamed = await widenPlan(db, RENAME);
    const result = await worker.runUntil(async () => {
      const handle = await start({
        plan: renamed,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 86_400, router },
      });
      for (let i = 0; i < 1200; i++) {
        const s = await handle.query(statusQuery);
        if (s.windowEndsAt !== undefined && s.swap?.state === 'swapped') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(lines()).toEqual(['100 false']);
      await handle.signal(abortSignal, { reason: 'changed our minds' });
      return handle.result();
    });
    expect(result.outcome).toBe('rolled-back');
    expect(lines()).toEqual(['100 false', '0 false']);
    expect(await relkind('orders')).toBe('r');

    // A swap without traffic steps: the router hears that the names have swapped.
    await seedOrders(db, 300);
    const swapped = await widenPlan(db, 'shift:\n  steps: []\n');
    // runUntil shuts its worker down: the second run gets its own.
    const second = await createTestWorker(env, recordingActivities(calls));
    const done = await second.runUntil(async () => {
      const handle = await start({
        plan: swapped,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 0, router },
      });
      return handle.result();
    });
    expect(done.outcome).toBe('completed');
    expect(lines()).toEqual(['100 false', '0 false', '0 true']);
  });
});
