/**
 * kill -9 the worker in the middle of the backfill, start a new one: the backfill resumes from
 * its heartbeat checkpoint (not from the first key), the run completes, and the new table holds
 * exactly the old table's rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backfillActivity,
  differingRows,
  startE2E,
  tableExists,
  tableFingerprint,
  userTriggers,
  waitFor,
  widenPlanYaml,
  seedOrders,
  type E2E,
} from './support';

const PLAN = 'e2e_worker_crash';
const ROWS = 40_000;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E('e2ecrash');
  await seedOrders(e2e.db, ROWS);
});
afterAll(async () => {
  await e2e?.stop();
});

describe('a worker killed with SIGKILL during the backfill', () => {
  it('is replaced by a new worker; the backfill resumes from its checkpoint and the run completes verified', async () => {
    const before = await tableFingerprint(e2e.db, 'public.orders');
    // Small batches with a pause: the copy takes long enough to be caught halfway.
    const planFile = e2e.writePlan(
      PLAN,
      widenPlanYaml(
        PLAN,
        `backfill:
  batchSize: 400
  pauseMs: 100
  adaptive: { enabled: false }
shift:
  steps:
    - { percent: 10, monitorSeconds: 1 }
    - { percent: 50, monitorSeconds: 1 }
    - { percent: 100, monitorSeconds: 1 }
`,
      ),
    );
    const first = await e2e.startWorker();
    const started = await e2e.cli([
      'start',
      planFile,
      '--auto-approve',
      'all',
      '--rollback-window',
      '0s',
      '--check-interval',
      '1s',
    ]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    expect(started.stdout).toContain(`started cutover-${PLAN}`);

    // Halfway: the server holds a heartbeat checkpoint and the new table has some rows, not all.
    const checkpoint = await waitFor(
      'a backfill checkpoint with rows copied',
      async () => {
        const a = await backfillActivity(e2e, PLAN);
        // Far enough in that a restart from the first key could not reach it by its first heartbeats.
        if (!a?.details || a.details.rowsDone < 12_000) return undefined;
        const { rows } = (await e2e.db.pool.query(`SELECT count(*)::int AS rows FROM orders_v2`))
          .rows[0] as { rows: number };
        return rows > 0 && rows < ROWS ? { ...a.details, rowsInTable: rows } : undefined;
      },
      90_000,
      100,
    );
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    const copiedAtKill = (await e2e.db.pool.query(`SELECT count(*)::int AS rows FROM orders_v2`))
      .rows[0].rows as number;
    expect(copiedAtKill).toBeLessThan(ROWS);

    await e2e.startWorker();
    // The dead attempt times out on its heartbeat; the retry runs on the new worker. Its first
    // heartbeat already counts the rows of the checkpoint: it went on from there.
    const resumed = await waitFor(
      'the retried backfill to heartbeat',
      async () => {
        const a = await backfillActivity(e2e, PLAN);
        if (!a) {
          // Finished between two polls: the run must be past the backfill then.
          const s = await e2e.status(PLAN);
          if (s.stepsDone.includes('prepare.backfill')) throw new Error('backfill ended unseen');
          return undefined;
        }
        return a.attempt >= 2 && a.lastHeartbeatMs > a.lastStartedMs && a.lastStartedMs > killedAt
          ? a
          : undefined;
      },
      90_000,
      100,
    );
    expect(resumed.attempt).toBeGreaterThanOrEqual(2);
    expect(resumed.details!.rowsDone).toBeGreaterThanOrEqual(checkpoint.rowsDone);
    // Every progress figure goes on from the checkpoint, none restarts from zero.
    expect(checkpoint.rowsInserted).toBeGreaterThanOrEqual(12_000);
    expect(resumed.details!.rowsInserted).toBeGreaterThanOrEqual(checkpoint.rowsInserted);
    expect(resumed.details!.batches).toBeGreaterThanOrEqual(checkpoint.batches);
    // The whole-table copy reads in page order; the retry went on from the checkpoint's page.
    expect(checkpoint.mode).toBe('ctid');
    expect(resumed.details!.mode).toBe('ctid');
    expect(resumed.details!.pages!.next).toBeGreaterThanOrEqual(checkpoint.pages!.next);
    expect(checkpoint.pages!.next).toBeLessThan(checkpoint.pages!.end);

    // `cutover status --json` shows the same retried activity and its progress.
    const statusJson = await e2e.cli(['status', PLAN, '--json']);
    expect(statusJson.code).toBe(0);
    const report = JSON.parse(statusJson.stdout) as {
      runStatus: string;
      activities: Array<{ activity: string; attempt: number }>;
      status: { stepsDone: string[] };
    };
    expect(report.runStatus).toBe('RUNNING');
    const backfillShown = report.activities.find((a) => a.activity === 'backfillRun');
    if (backfillShown) expect(backfillShown.attempt).toBeGreaterThanOrEqual(2);
    else expect(report.status.stepsDone).toContain('prepare.backfill');

    const result = await waitFor(
      'the run to complete',
      async () => {
        const d = await e2e.handle(PLAN).describe();
        return d.status.name === 'RUNNING' ? undefined : e2e.handle(PLAN).result();
      },
      100_000,
      500,
    );
    expect(result.outcome).toBe('completed');
    expect(result.stepsDone).toEqual(
      expect.arrayContaining(['prepare.backfill', 'validate.verify', 'cleanup.cleanup']),
    );
    const final = await e2e.status(PLAN);
    expect(final.state).toBe('completed');
    expect(final.rowsCopied).toBe(ROWS);

    // Independently of the workflow's own verification: the archived old table and the new
    // table hold the same rows, and they are exactly the rows the old table had at the start.
    // After the swap the new table has the old name and the old one is the run's archive.
    const archive = `public.${final.swap!.archive}`;
    expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
    expect(await differingRows(e2e.db, archive, 'public.orders')).toBe(0);
    expect(await tableFingerprint(e2e.db, 'public.orders')).toEqual(before);
    expect(await tableFingerprint(e2e.db, archive)).toEqual(before);
    expect(await userTriggers(e2e.db)).toBe(0);

    const shown = await e2e.cli(['status', PLAN, '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).runStatus).toBe('COMPLETED');
    // The run's pre-flight reads the table first at the same throttle (100 batches, 100 ms apart).
  }, 240_000);
});
