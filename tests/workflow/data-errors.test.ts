import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { renderReport } from '../../src/cli/render-status';
import { parsePlan, resolvePlan, type ResolvedPlan } from '../../src/plan';
import { runReport } from '../../src/temporal/runs';
import { blueGreen } from '../../workflows/blue-green';
import {
  statusQuery,
  TASK_QUEUE,
  workflowIdFor,
  type RunStatus,
} from '../../workflows/definitions';
import type { TestDatabase } from '../support/db';
import {
  createTestWorker,
  recordingActivities,
  seedOrders,
  tableExists,
  userTriggers,
  useWorkflowEnv,
} from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;

useWorkflowEnv('wfdata', (d, e) => {
  db = d;
  env = e;
});
beforeEach(() => {
  calls = [];
});

/** orders → orders_v2 with id widened and customer narrowed to varchar(12): 'customer-96' fits. */
async function narrowPlan(name: string): Promise<ResolvedPlan> {
  const text = `name: ${name}
source: public.orders
target:
  table: orders_v2
  like: source
  alter:
    - ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint
    - ALTER TABLE orders_v2 ALTER COLUMN customer TYPE varchar(12)
mapping:
  up: {}
  down: {}
backfill:
  batchSize: 100
  pauseMs: 20
`;
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return await resolvePlan(parsePlan(text, `${name}.yaml`), c);
  } finally {
    await c.end();
  }
}

async function start(plan: ResolvedPlan) {
  return env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: workflowIdFor(plan.change.name),
    args: [{ plan, settings: { autoApprove: 'all', rollbackWindowSeconds: 0 } }],
  });
}

async function until(
  handle: Awaited<ReturnType<typeof start>>,
  pred: (s: RunStatus) => boolean,
  what: string,
): Promise<RunStatus> {
  for (let i = 0; i < 2400; i++) {
    const s = await handle.query(statusQuery);
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** The Web UI's "current details" of a run, read through the built-in metadata query. */
async function currentDetails(handle: Awaited<ReturnType<typeof start>>): Promise<string> {
  const meta = (await handle.query('__temporal_workflow_metadata')) as {
    currentDetails?: string;
  };
  return meta.currentDetails ?? '';
}

const LONG_NAME = `'a customer name far too long'`;

describe('data errors fail the run at once, with the key, and roll back', () => {
  it('a lossy row written after plan check is caught by the run’s pre-flight: nothing is written', async () => {
    await seedOrders(db, 2_000);
    const plan = await narrowPlan(`pre_${++runNo}`);
    await db.pool.query(`UPDATE orders SET customer = ${LONG_NAME} WHERE id = 1234`);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { status, failure, details } = await worker.runUntil(async () => {
      const handle = await start(plan);
      const failure = await handle.result().then(
        () => undefined,
        (e: Error) => e,
      );
      return {
        status: await handle.query(statusQuery),
        failure,
        details: await currentDetails(handle),
      };
    });
    expect(failure).toBeDefined();
    expect(calls.filter((c) => c === 'preflight')).toHaveLength(1); // one attempt, no retries
    expect(calls).not.toContain('backupRun');
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(
      /^pre-flight: not every row of public\.orders maps: mapping\.up\.customer: value does not fit target column "customer" \(character varying\(12\)\).* at \(id\)=\(1234\)/,
    );
    expect(status.stepsDone).toEqual([]);
    expect(details).toContain('(id)=(1234)');
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
  });

  it('a lossy row arriving during the backfill (past the triggers) fails the step on the first attempt; the run rolls back', async () => {
    await seedOrders(db, 20_000);
    const plan = await narrowPlan(`bf_${++runNo}`);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { status, report, details } = await worker.runUntil(async () => {
      const handle = await start(plan);
      await until(handle, (s) => s.step === 'prepare.backfill', 'the backfill');
      // A write path the sync triggers never see (replication apply runs with this role).
      const writer = new pg.Client({ connectionString: db.url });
      await writer.connect();
      try {
        await writer.query(`SET session_replication_role = replica`);
        await writer.query(
          `INSERT INTO orders (id, customer, amount_cents) VALUES (39991, ${LONG_NAME}, 1)`,
        );
      } finally {
        await writer.end();
      }
      await handle.result().catch(() => undefined);
      return {
        status: await handle.query(statusQuery),
        report: await runReport(env.client, handle.workflowId),
        details: await currentDetails(handle),
      };
    });
    expect(calls.filter((c) => c === 'preflight')).toHaveLength(1);
    expect(calls.filter((c) => c === 'backfillRun')).toHaveLength(1); // not retried
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(
      /^the backfill cannot copy row \(id\)=\(39991\) of public\.orders: value too long for type character varying\(12\) \(SQLSTATE 22001\)/,
    );
    expect(status.undone).toEqual(['prepare.backfill', 'prepare.sync', 'prepare.shadow']);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
    const cli = renderReport(report);
    expect(cli).toMatch(/error +the backfill cannot copy row \(id\)=\(39991\)/);
    expect(details).toContain('(id)=(39991)');
  });

  it('a transient error (connection killed) is retried, and the retry shows attempt and last error', async () => {
    await seedOrders(db, 20_000);
    const plan = await narrowPlan(`tr_${++runNo}`);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { result, retrying, final } = await worker.runUntil(async () => {
      const handle = await start(plan);
      await until(handle, (s) => s.step === 'prepare.backfill', 'the backfill');
      for (let i = 0; i < 400; i++) {
        const n = await db.pool.query(`SELECT count(*)::int AS n FROM orders_v2`);
        if (n.rows[0].n >= 2_000) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await db.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cutover-backfill'`,
      );
      let retrying = '';
      for (let i = 0; i < 600 && !retrying; i++) {
        const r = await runReport(env.client, handle.workflowId);
        if (r.activities.some((a) => a.attempt > 1)) retrying = renderReport(r);
        else await new Promise((res) => setTimeout(res, 50));
      }
      const result = await handle.result();
      return { result, retrying, final: await handle.query(statusQuery) };
    });
    expect(retrying).toMatch(/backfillRun .*\(attempt 2, last error: .*connection/);
    expect(calls.filter((c) => c === 'backfillRun')).toHaveLength(2);
    expect(result.outcome).toBe('completed');
    expect(final.rowsCopied).toBe(20_000);
  });
});
