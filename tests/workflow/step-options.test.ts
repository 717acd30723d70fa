import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { msToNumber } from '@temporalio/common/lib/time';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { shortActivity } from '../../src/steps/options';
import type { ResolvedStepOf } from '../../src/steps/schemas';
import { stepSpecs } from '../../src/steps/specs';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import { statusQuery, TASK_QUEUE } from '../../workflows/definitions';
import type { TestDatabase } from '../support/db';
import {
  createTestWorker,
  recordingActivities,
  seedOrders,
  tableExists,
  userTriggers,
  widenPlan,
  useWorkflowEnv,
} from './support';

/**
 * Per-step activity options and error mapping, on the time-skipping server with real activities
 * and real PostgreSQL: an error that cannot heal fails the run at once, and a hook may run
 * longer than the 5 minutes a quick step gets.
 */
let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;
const dir = mkdtempSync(join(tmpdir(), 'cutover-step-options-'));

const PREPARE = `stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }, { kind: backfill }]
`;

useWorkflowEnv('wfopt', (d, e) => {
  db = d;
  env = e;
});
beforeEach(async () => {
  calls = [];
  await seedOrders(db, 200);
});

function start(input: BlueGreenInput) {
  return env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: `step-options-${++runNo}`,
    args: [input],
  });
}

const realSleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('step activity options and error mapping', () => {
  it('a UserError from an activity fails the run at once (one attempt) and rolls back', async () => {
    const plan = await widenPlan(db, PREPARE);
    // After the check and the run's pre-flight, the source changes under the plan: the column
    // its mapping copies is renamed just before the sync step, so the sync step's own check (a
    // UserError) refuses to install the triggers. That state does not change by retrying; the
    // old 10-attempt retry policy retried it anyway.
    const recorded = recordingActivities(calls);
    const activities: typeof recorded = {
      ...recorded,
      syncRun: async (input) => {
        await db.pool.query('ALTER TABLE orders RENAME COLUMN customer TO client');
        return recorded.syncRun(input);
      },
    };
    const worker = await createTestWorker(env, activities);
    const err = await worker.runUntil(async () => {
      const handle = await start({ plan });
      return handle.result().catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /step prepare\.sync failed: .*"customer".*; rolled back: prepare\.shadow/,
    );
    expect(calls.filter((c) => c === 'syncRun')).toHaveLength(1);
    expect(calls).toEqual(['preflight', 'shadowRun', 'syncRun', 'shadowUndo']);
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(await userTriggers(db)).toBe(0);
  });

  it('a hook step gets its own timeout, not 5 minutes', () => {
    const step: ResolvedStepOf<'hook'> = {
      kind: 'hook',
      id: 'deploy.hook',
      hook: { kind: 'command', command: 'true', timeoutMs: 24 * 3_600_000 },
    };
    const options = stepSpecs.hook.options!(step, {});
    expect(msToNumber(options.startToCloseTimeout!)).toBeGreaterThanOrEqual(24 * 3_600_000);
    expect(msToNumber(options.heartbeatTimeout!)).toBeLessThanOrEqual(60_000);
    expect(msToNumber(shortActivity.startToCloseTimeout!)).toBe(5 * 60_000);
    // A command router may take up to an hour per route change.
    const route = stepSpecs.route.options!(
      { kind: 'route', id: 'shift.route', percent: 10 },
      { router: { kind: 'command', timeoutMs: 3_600_000 } },
    );
    expect(msToNumber(route.startToCloseTimeout!)).toBeGreaterThanOrEqual(3_600_000);
  });

  it('a hook runs under its own timeout, heartbeating, and completes', async () => {
    // Why not 5 minutes of server time: the time-skipping server skips time only while no
    // activity runs (env.sleep during an activity waits in real time; tried), so a hook that
    // "runs 6 minutes" would take 6 real minutes. What would have failed such a hook is the
    // 5-minute startToCloseTimeout it was scheduled with. So this test proves, on the server,
    // what the run really asks for: the hookRun activity is scheduled (history event) with the
    // hook's own timeout (1 h + 1 min) instead of 5 minutes, and with a 30 s heartbeat timeout;
    // while its command waits on a file the test controls, the worker heartbeats (so a dead
    // worker is noticed in 30 s, not an hour); released, the step and the run complete.
    const release = join(dir, 'release');
    const startedFile = join(dir, 'started');
    const plan = await widenPlan(
      db,
      `${PREPARE}  - name: deploy
    steps:
      - kind: hook
        run:
          command: "touch '${startedFile}'; while [ ! -f '${release}' ]; do sleep 0.2; done"
          timeoutMs: 3600000
`,
    );
    const worker = await createTestWorker(env, recordingActivities(calls));
    const { result, history } = await worker.runUntil(async () => {
      const handle = await start({ plan });
      for (let i = 0; !existsSync(startedFile); i++) {
        if (i > 600) throw new Error('the hook did not start');
        await realSleep(100);
      }
      expect((await handle.query(statusQuery)).step).toBe('deploy.hook');
      // Two heartbeats, seconds apart, while the command still waits.
      const beat = async () => {
        for (let i = 0; i < 200; i++) {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const at = pending[0]?.lastHeartbeatTime?.seconds;
          if (at) return Number(at);
          await realSleep(100);
        }
        throw new Error('no heartbeat from the hook activity');
      };
      const first = await beat();
      await realSleep(2500);
      const later = await beat();
      expect(later).toBeGreaterThan(first);
      writeFileSync(release, '');
      return { result: await handle.result(), history: await handle.fetchHistory() };
    });
    expect(result.outcome).toBe('completed');
    expect(calls.filter((c) => c === 'hookRun')).toHaveLength(1);
    const scheduled = history.events!.map((e) => e.activityTaskScheduledEventAttributes);
    const hook = scheduled.find((a) => a?.activityType?.name === 'hookRun')!;
    expect(Number(hook.startToCloseTimeout!.seconds)).toBe(3600 + 60);
    expect(Number(hook.heartbeatTimeout!.seconds)).toBe(30);
    // The quick steps still run under 5 minutes.
    const sync = scheduled.find((a) => a?.activityType?.name === 'syncRun')!;
    expect(Number(sync.startToCloseTimeout!.seconds)).toBe(300);
  });
});
