/**
 * Stop the Temporal dev server in the middle of a monitoring window and start it again with the
 * same SQLite file: the window's durable timer survives, the worker gets back to work, and the
 * run completes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  differingRows,
  startE2E,
  tableExists,
  tableFingerprint,
  userTriggers,
  waitFor,
  widenPlanYaml,
  seedOrders,
  type ChildHandle,
  type E2E,
} from './support';

const PLAN = 'e2e_server_restart';
const ROWS = 3_000;
let e2e: E2E;

beforeAll(async () => {
  e2e = await startE2E('e2erestart');
  await seedOrders(e2e.db, ROWS);
});
afterAll(async () => {
  await e2e?.stop();
});

describe('the Temporal server restarted during a monitoring window', () => {
  it('keeps the run: it resumes after the restart and completes', async () => {
    const before = await tableFingerprint(e2e.db, 'public.orders');
    const planFile = e2e.writePlan(
      PLAN,
      widenPlanYaml(
        PLAN,
        `shift:
  steps:
    - { percent: 10, monitorSeconds: 25 }
    - { percent: 50, monitorSeconds: 1 }
    - { percent: 100, monitorSeconds: 1 }
`,
      ),
    );
    let worker: ChildHandle = await e2e.startWorker();
    const started = await e2e.cli([
      'start',
      planFile,
      '--auto-approve',
      'all',
      '--rollback-window',
      '2s',
    ]);
    expect(started.code).toBe(0);

    const inWindow = await waitFor(
      'the first monitoring window',
      async () => {
        const s = await e2e.status(PLAN);
        return s.step === 'shift.monitor' && s.windowEndsAt ? s : undefined;
      },
      90_000,
    );
    expect(inWindow.routePercent).toBe(10);
    // The window still has a while to run when the server goes away.
    expect(Date.parse(inWindow.windowEndsAt!)).toBeGreaterThan(Date.now() + 5_000);

    await e2e.stopServer();
    expect(await e2e.cli(['status', PLAN])).toMatchObject({ code: 1 });
    await e2e.restartServer();

    // The run is still open, mid-window, with its state intact.
    const after = await waitFor('the status after the restart', async () => {
      const s = await e2e.status(PLAN);
      return s.step === 'shift.monitor' || s.stepsDone.includes('shift.monitor') ? s : undefined;
    });
    expect(after.stepsDone).toEqual(
      expect.arrayContaining(['prepare.backfill', 'validate.verify', 'shift.route']),
    );

    // A worker that gave up while the server was gone is replaced, as an operator would.
    if (worker.proc.exitCode !== null || worker.proc.signalCode !== null)
      worker = await e2e.startWorker();

    const result = await waitFor(
      'the run to complete',
      async () => {
        const d = await e2e.handle(PLAN).describe();
        return d.status.name === 'RUNNING' ? undefined : e2e.handle(PLAN).result();
      },
      90_000,
      500,
    );
    expect(result.outcome).toBe('completed');
    expect(result.stepsDone).toEqual(
      expect.arrayContaining(['shift.monitor', 'shift.monitor-2', 'shift.monitor-3']),
    );
    const history = await e2e.handle(PLAN).fetchHistory();
    const timersFired = history.events!.filter((e) => e.timerFiredEventAttributes).length;
    expect(timersFired).toBeGreaterThanOrEqual(3); // three windows (+ the rollback window)

    // The swap gave the new table the old name; the old table is the run's archive.
    const archive = `public.${(await e2e.status(PLAN)).swap!.archive}`;
    expect(await tableExists(e2e.db, 'public.orders_v2')).toBe(false);
    expect(await differingRows(e2e.db, archive, 'public.orders')).toBe(0);
    expect(await tableFingerprint(e2e.db, 'public.orders')).toEqual(before);
    expect(await userTriggers(e2e.db)).toBe(0);
    expect(worker.proc.exitCode).toBeNull();
  });
});
