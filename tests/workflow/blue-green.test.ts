import { writeFileSync } from 'node:fs';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  pauseSignal,
  resumeSignal,
  statusQuery,
  TASK_QUEUE,
  throttleUpdate,
  type RunStatus,
} from '../../workflows/definitions';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import type { TestDatabase } from '../support/db';
import {
  createTestWorker,
  recordingActivities,
  routePercent,
  seedOrders,
  userTriggers,
  tableExists,
  widenPlan,
  useWorkflowEnv,
} from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;

const HOUR_WINDOWS = `
shift:
  steps:
    - { percent: 10, monitorSeconds: 3600 }
    - { percent: 50, monitorSeconds: 3600 }
    - { percent: 100, monitorSeconds: 3600 }
`;

useWorkflowEnv('wf', (d, e) => {
  db = d;
  env = e;
});
beforeEach(async () => {
  calls = [];
  await seedOrders(db, 500);
});

async function start(input: BlueGreenInput) {
  return env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: `bg-test-${++runNo}`,
    args: [input],
  });
}

/**
 * Polls the status query. Time skips only while a client awaits a result, so inside a timed
 * window pass `skip` to move workflow time forward between polls (never while an activity
 * runs: its heartbeat timeout would be skipped past too).
 */
async function until(
  handle: Awaited<ReturnType<typeof start>>,
  pred: (s: RunStatus) => boolean,
  what: string,
  skip?: string,
): Promise<RunStatus> {
  for (let i = 0; i < 600; i++) {
    const s = await handle.query(statusQuery);
    if (pred(s)) return s;
    if (skip) await env.sleep(skip);
    else await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** CUTOVER_RECORD_HISTORIES=dir writes the histories the replay test replays (tests/fixtures/histories). */
function record(name: string, history: Parameters<typeof historyToJSON>[0]): void {
  const dir = process.env.CUTOVER_RECORD_HISTORIES;
  if (dir) writeFileSync(`${dir}/${name}`, historyToJSON(history));
}

/** Calls made after the abort: the undos, in the order they ran. */
const undoCalls = () => calls.filter((c) => c.endsWith('Undo'));

describe('blue-green workflow on the time-skipping server, real activities, real PostgreSQL', () => {
  it('runs every stage; hour-long monitoring windows and a day-long rollback window pass at once', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const started = Date.now();
    const { result, history } = await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 86_400 },
      });
      const result = await handle.result();
      return { result, history: await handle.fetchHistory() };
    });
    expect(Date.now() - started).toBeLessThan(120_000); // 3 h of windows + 24 h rollback window, skipped
    expect(result.outcome).toBe('completed');
    expect(result.stepsDone).toEqual(plan.stages.flatMap((s) => s.steps.map((st) => st.id)));
    // The swap gave the new table the old name; the old table is the run's archive.
    const archives = await db.pool.query<{ relname: string }>(
      `SELECT relname FROM pg_class WHERE relname LIKE 'orders\\_old\\_%' AND relkind = 'r'`,
    );
    expect(archives.rows).toHaveLength(1);
    const archive = archives.rows[0]!.relname;
    expect(archive).toMatch(/^orders_old_\d{14}$/);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
    expect(await routePercent(db, 'widen_orders_id')).toBe(100);
    const diff = await db.pool.query(
      `SELECT count(*)::int AS n FROM ((SELECT * FROM ${archive} EXCEPT SELECT * FROM orders)
         UNION ALL (SELECT * FROM orders EXCEPT SELECT * FROM ${archive})) d`,
    );
    expect(diff.rows[0].n).toBe(0);
    const types = await db.pool.query(
      `SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'id'`,
    );
    expect(types.rows[0].data_type).toBe('bigint');
    // History stays small: its size depends on steps and windows, not on the 500 rows.
    expect(history.events!.length).toBeLessThan(400);
    record('blue-green-full.json', history);
  });

  it('parallelRanges: the backfill and the verification each run one activity per key range', async () => {
    await db.pool.query(`UPDATE orders SET id = id; ANALYZE orders`);
    const plan = await widenPlan(db, '  parallelRanges: 3\n');
    const worker = await createTestWorker(env, recordingActivities(calls));
    const result = await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 0 },
      });
      return handle.result();
    });
    expect(result.outcome).toBe('completed');
    expect(calls.filter((c) => c === 'backfillSplitRanges').length).toBe(2);
    expect(calls.filter((c) => c === 'backfillRun').length).toBe(3);
    expect(calls.filter((c) => c === 'verify').length).toBe(3);
    // The swap gave the new table the old name; the old table is the run's archive.
    const archives = await db.pool.query<{ relname: string }>(
      `SELECT relname FROM pg_class WHERE relname LIKE 'orders\\_old\\_%' AND relkind = 'r'`,
    );
    expect(archives.rows).toHaveLength(1);
    const archive = archives.rows[0]!.relname;
    const diff = await db.pool.query(
      `SELECT count(*)::int AS n FROM ((SELECT * FROM ${archive} EXCEPT SELECT * FROM orders)
         UNION ALL (SELECT * FROM orders EXCEPT SELECT * FROM ${archive})) d`,
    );
    expect(diff.rows[0].n).toBe(0);
  });

  it('waits at each gate; approving a gate that is not waiting is refused; approve by update and by signal', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    await worker.runUntil(async () => {
      const handle = await start({ plan, settings: { rollbackWindowSeconds: 0 } });
      const atShift = await until(
        handle,
        (s) => s.waitingGates.includes('shift'),
        'the shift gate',
      );
      expect(atShift.state).toBe('waiting');
      expect(atShift.stepsDone).toContain('prepare.backfill');
      expect(await routePercent(db, 'widen_orders_id')).toBeNull();

      const wrong = await handle
        .executeUpdate(approveUpdate, { args: [{ gate: 'cleanup' }] })
        .catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((wrong as Error).cause)).toMatch(
        /gate "cleanup" is not waiting \(waiting: shift\)/,
      );

      expect(await handle.executeUpdate(approveUpdate, { args: [{}] })).toBe('shift');
      for (let i = 0; i < 200; i++) {
        await env.sleep('10 minutes');
        if ((await handle.query(statusQuery)).waitingGates.includes('cleanup')) break;
      }
      const atCleanup = await handle.query(statusQuery);
      expect(atCleanup.waitingGates).toEqual(['cleanup']);
      expect(atCleanup.routePercent).toBe(100);
      await handle.signal(approveSignal, { gate: 'cleanup' });
      expect((await handle.result()).outcome).toBe('completed');
    });
  });

  it('abort at the shift gate undoes exactly the completed steps, in reverse, and loses nothing', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const result = await worker.runUntil(async () => {
      const handle = await start({ plan });
      await until(handle, (s) => s.waitingGates.includes('shift'), 'the shift gate');
      await handle.signal(abortSignal, { reason: 'change freeze' });
      return handle.result();
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toBe('aborted: change freeze');
    expect(result.undone).toEqual(['prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(undoCalls()).toEqual(['backfillUndo', 'syncUndo', 'shadowUndo']);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM orders`)).rows[0].n).toBe(500);
  });

  it('at a gate the Web UI details say how to approve; Request Cancellation rolls back like an abort', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { result, details } = await worker.runUntil(async () => {
      const handle = await start({ plan });
      await until(handle, (s) => s.waitingGates.includes('shift'), 'the shift gate');
      // What the Web UI shows as "current details" comes from this built-in query.
      const meta = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      await handle.cancel();
      return { result: await handle.result(), details: meta.currentDetails };
    });
    expect(details).toContain('stage `approve-shift`');
    expect(details).toContain(
      'waiting for approval of gate `shift`: `cutover approve widen_orders_id shift`, or signal `approve` with `{"gate":"shift"}`',
    );
    expect(details).toMatch(/backfill: 500 rows copied/);
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toMatch(/^aborted: workflow cancellation requested/);
    expect(result.undone).toEqual(['prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(undoCalls()).toEqual(['backfillUndo', 'syncUndo', 'shadowUndo']);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM orders`)).rows[0].n).toBe(500);
  });

  it('abort during a monitoring window at 50% routes back to 0 and keeps writes made to the new table', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const result = await worker.runUntil(async () => {
      const handle = await start({ plan });
      await until(handle, (s) => s.waitingGates.includes('shift'), 'the shift gate');
      await handle.signal(approveSignal, { gate: 'shift' });
      await until(
        handle,
        (s) => s.routePercent === 50 && s.step === 'shift.monitor-2',
        'the 50% window',
        '5 minutes',
      );
      // Application traffic at 50%: writes land in the new table and must flow back.
      await db.pool.query(
        `INSERT INTO orders_v2 (id, customer, amount_cents) VALUES (100001, 'late', 42)`,
      );
      await db.pool.query(`UPDATE orders_v2 SET amount_cents = 7 WHERE id = 1`);
      await db.pool.query(`DELETE FROM orders_v2 WHERE id = 2`);
      await handle.signal(abortSignal, { reason: 'p99 latency' });
      const result = await handle.result();
      record('blue-green-abort-at-50.json', await handle.fetchHistory());
      return result;
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.undone).toEqual(['route', 'prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(undoCalls()).toEqual(['routeUndo', 'backfillUndo', 'syncUndo', 'shadowUndo']);
    expect(await routePercent(db, 'widen_orders_id')).toBe(0);
    const old = await db.pool.query(
      `SELECT id, amount_cents FROM orders WHERE id IN (1, 2, 100001) ORDER BY id`,
    );
    expect(old.rows).toEqual([
      { id: 1, amount_cents: 7 },
      { id: 100001, amount_cents: 42 },
    ]);
  });

  it('abort while the backfill runs cancels it, then undoes sync and shadow', async () => {
    await seedOrders(db, 20_000);
    const plan = await widenPlan(db, HOUR_WINDOWS);
    plan.backfill.pauseMs = 50;
    const worker = await createTestWorker(env, recordingActivities(calls));
    const result = await worker.runUntil(async () => {
      const handle = await start({ plan });
      await until(handle, (s) => s.step === 'prepare.backfill', 'the backfill');
      for (let i = 0; i < 200; i++) {
        if ((await db.pool.query(`SELECT count(*)::int AS n FROM orders_v2`)).rows[0].n > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await handle.signal(abortSignal, { reason: 'wrong plan' });
      return handle.result();
    });
    expect(result.undone).toEqual(['prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(result.stepsDone).not.toContain('prepare.backfill');
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
  });

  it('a breached check rolls back automatically', async () => {
    const plan = await widenPlan(db, HOUR_WINDOWS);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const result = await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: {
          autoApprove: 'all',
          monitorChecks: [
            {
              kind: 'sql',
              name: 'late orders',
              query: `SELECT count(*) FROM orders_v2 WHERE customer = 'late'`,
              op: '=',
              threshold: 0,
            },
          ],
        },
      });
      await until(handle, (s) => s.routePercent === 10, 'the 10% step');
      await db.pool.query(
        `INSERT INTO orders (id, customer, amount_cents) VALUES (200001, 'late', 1)`,
      );
      return handle.result();
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toMatch(/check failed during monitoring: late orders/);
    expect(result.undone[0]).toBe('route');
    expect(await routePercent(db, 'widen_orders_id')).toBe(0);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM orders`)).rows[0].n).toBe(501);
  });

  it('pause holds the backfill, throttle changes take effect, nonsense throttles are refused', async () => {
    await seedOrders(db, 20_000);
    const plan = await widenPlan(db, HOUR_WINDOWS);
    plan.backfill.pauseMs = 20;
    const worker = await createTestWorker(env, recordingActivities(calls));
    await worker.runUntil(async () => {
      const handle = await start({
        plan,
        settings: { autoApprove: 'all', rollbackWindowSeconds: 0 },
      });
      const copied = async () =>
        (await db.pool.query(`SELECT count(*)::int AS n FROM orders_v2`)).rows[0].n as number;
      await until(handle, (s) => s.step === 'prepare.backfill', 'the backfill');
      while ((await copied()) === 0) await new Promise((r) => setTimeout(r, 25));
      await handle.signal(pauseSignal);
      await until(handle, (s) => s.paused, 'paused');
      await new Promise((r) => setTimeout(r, 1000)); // let the batch in flight finish
      const held = await copied();
      await new Promise((r) => setTimeout(r, 1500));
      expect(await copied()).toBe(held);
      expect(held).toBeLessThan(20_000);

      const bad = await handle
        .executeUpdate(throttleUpdate, { args: [{ batchSize: 0, sleepMs: -5 }] })
        .catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((bad as Error).cause)).toMatch(
        /batchSize must be a whole number from 1 to 1000000, got 0; sleepMs must be/,
      );

      expect(
        await handle.executeUpdate(throttleUpdate, { args: [{ batchSize: 5000, sleepMs: 0 }] }),
      ).toEqual({
        batchSize: 5000,
        sleepMs: 0,
      });
      const control = await db.pool.query(
        `SELECT batch_size, sleep_ms, paused FROM cutover.backfill_control`,
      );
      expect(control.rows).toEqual([{ batch_size: 5000, sleep_ms: 0, paused: true }]);
      await handle.signal(resumeSignal);
      expect((await handle.result()).outcome).toBe('completed');
    });
    // Swapped: the new table now has the old name.
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM orders`)).rows[0].n).toBe(20_000);
  });
});
