import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { backfillRun, backfillSplitRanges, backfillUndo } from '../../src/steps/backfill/activity';
import {
  verify,
  verifyTables,
  type VerifyProgress,
  type VerifyResult,
} from '../../src/steps/verify/tables';
import { runBackfill, type BackfillProgress } from '../../src/backfill/core';
import { INITIAL_DUTY, LoadGovernor, resolveLoadBudget } from '../../src/backfill/load-budget';
import { renderReport } from '../../src/cli/render-status';
import { accountsChange, createAccounts, mappingDifferences } from './support';

let db: TestDatabase;
const change = accountsChange('budget', 'lbtest');

beforeAll(async () => {
  db = await createTestDatabase('loadbudget');
  process.env.CUTOVER_DB_LBTEST_URL = db.url;
});
afterAll(async () => {
  await db?.drop();
});

async function connect(app: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url, application_name: app });
  await c.connect();
  return c;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 60_000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Ends test sessions even when a test fails half-way, so no lock outlives its test. */
async function endAll(...clients: pg.Client[]) {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
}

/** Short windows so the test sees the controller act within seconds. */
const fast = { windowMs: 150, baselineMs: 300, rebaselineSeconds: 0 };

describe('load budget', () => {
  it('slows the backfill while the probe query is slow, and recovers when it is fast again', async () => {
    await createAccounts(db.pool, 150_000);
    await db.pool.query(`DROP TABLE IF EXISTS probe_delay;
      CREATE TABLE probe_delay (s float8); INSERT INTO probe_delay VALUES (0.02)`);
    const client = await connect('backfill-under-test');
    const seen: BackfillProgress[] = [];
    let stop = false;
    const run = runBackfill(client, change, {
      isCancelled: () => stop,
      ghostGuard: 'lock',
      throttle: { batchSize: 400, minBatchSize: 20 },
      loadBudget: resolveLoadBudget({
        ...fast,
        // A wide budget, so a busy test machine's noise in the probe does not count.
        maxAppSlowdown: 0.5,
        probe: 'SELECT pg_sleep(s) FROM probe_delay',
        signals: ['probe'],
      }),
      onProgress: (p) => {
        seen.push(p);
      },
    });
    // It starts gently and reaches full speed while the application keeps its pace.
    await waitFor(() => seen.length >= 1, 'a first batch');
    expect(seen[0]!.loadThrottle!.duty).toBeLessThan(0.5);
    expect(seen[0]!.loadThrottle!.duty).toBeGreaterThanOrEqual(INITIAL_DUTY);
    await waitFor(() => seen.some((p) => p.loadThrottle?.duty === 1), 'full speed');
    const start = seen.length;
    // The application gets ten times slower: the probe shows it against its baseline.
    await db.pool.query(`UPDATE probe_delay SET s = 0.2`);
    const isSlowed = (p: BackfillProgress) => p.loadThrottle !== null && p.loadThrottle.duty < 0.5;
    await waitFor(() => seen.slice(start).some(isSlowed), 'the duty cycle to drop');
    const slowed = seen.slice(start).find(isSlowed)!;
    expect(slowed.throttled).toMatch(/^probe \d+\.\d ms vs \d+\.\d ms \(budget 0\.50×\)$/);
    expect(slowed.loadThrottle!.figure).toBeGreaterThan(0.5);
    expect(slowed.batchSize).toBeLessThan(400);
    expect(seen.at(-1)!.rowsDone).toBeLessThan(150_000);
    const rowsWhenSlowed = seen.length;
    await db.pool.query(`UPDATE probe_delay SET s = 0.02`);
    const isRecovered = (p: BackfillProgress) => (p.loadThrottle?.duty ?? 0) >= 0.8;
    await waitFor(() => seen.slice(rowsWhenSlowed).some(isRecovered), 'full speed again');
    const recovered = seen.slice(rowsWhenSlowed).find(isRecovered)!;
    expect(recovered.batchSize).toBeGreaterThanOrEqual(320);
    stop = true;
    const result = await run;
    await client.end();
    expect(result.cancelled).toBe(true);
  });

  it('slows down while more application backends are active than maxLoad allows', async () => {
    // Big enough that the copy cannot finish before the load arrives and goes, even on a fast
    // machine; it is stopped once back at full speed and finished from its checkpoint.
    const rows = 300_000;
    await createAccounts(db.pool, rows);
    const client = await connect('backfill-under-test');
    const seen: BackfillProgress[] = [];
    let stop = false;
    const run = runBackfill(client, change, {
      isCancelled: () => stop,
      throttle: { batchSize: 300, minBatchSize: 20 },
      // The active backends alone: other test files' writes (xids are cluster-wide) on a busy
      // machine must not hold this copy below full speed once the load is gone.
      loadBudget: resolveLoadBudget({
        ...fast,
        maxLoad: { activeBackends: 3 },
        signals: ['active'],
      }),
      onProgress: (p) => {
        seen.push(p);
      },
    });
    await waitFor(() => seen.length >= 3, 'a few batches');
    // A synthetic load: four application sessions busy in a query.
    const load = await Promise.all([1, 2, 3, 4].map(() => connect('synthetic-load')));
    onTestFinished(() => endAll(...load));
    const busy = load.map((c) => c.query('SELECT pg_sleep(600)').catch(() => {}));
    await waitFor(
      () => seen.some((p) => /^[4-9]\d* active backends ≥ 3$/.test(p.throttled ?? '')),
      'the throttle to name the active backends',
    );
    const slowed = seen.find((p) => /active backends/.test(p.throttled ?? ''))!;
    expect(slowed.loadThrottle!.duty).toBeLessThan(1);
    expect(slowed.rowsDone).toBeLessThan(rows);
    await db.pool.query(
      `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'synthetic-load'`,
    );
    await Promise.all(busy);
    const mark = seen.length;
    // Back to full speed once the load is gone.
    await waitFor(
      () => seen.slice(mark).some((p) => p.loadThrottle?.duty === 1 && p.throttled === null),
      'full speed again',
    );
    stop = true;
    const first = await run;
    expect(first.cancelled).toBe(true);
    // The rest from the checkpoint: every row copied exactly.
    const result = await runBackfill(client, change, {
      resumeFrom: first.progress,
      throttle: { batchSize: 5_000 },
    });
    await client.end();
    expect(result.progress.rowsDone).toBe(rows);
    expect(await mappingDifferences(db.pool)).toBe(0);
  });

  it('pauses at the critical threshold, shows why in the heartbeat and status, and resumes', async () => {
    await createAccounts(db.pool, 80_000);
    await backfillUndo({ change });
    await db.pool.query(`DROP TABLE IF EXISTS lock_me; CREATE TABLE lock_me (x int)`);
    const beats: BackfillProgress[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: BackfillProgress) => beats.push(d));
    const run = env.run(backfillRun, {
      change,
      throttle: { batchSize: 200 },
      loadBudget: { ...fast, criticalLoad: { lockWaits: 1 } },
    }) as Promise<BackfillProgress>;
    await waitFor(() => beats.some((b) => b.rowsDone >= 1_000), 'some rows');
    // An application session waits for a lock another one holds.
    const holder = await connect('synthetic-load');
    const waiter = await connect('synthetic-load');
    onTestFinished(() => endAll(holder, waiter));
    await holder.query('BEGIN; LOCK TABLE lock_me');
    const waiting = waiter.query('BEGIN; LOCK TABLE lock_me').catch(() => {});
    await waitFor(
      () =>
        beats.some(
          (b) => b.state === 'paused' && /^critical: 1 lock waits ≥ 1$/.test(b.throttled ?? ''),
        ),
      'a critical pause',
    );
    const paused = [...beats].reverse().find((b) => b.state === 'paused')!;
    expect(paused.loadThrottle).toMatchObject({ critical: true, duty: 0, figure: 1 });
    const held = paused.rowsDone;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(beats.at(-1)!.rowsDone).toBe(held);
    expect(beats.at(-1)!.state).toBe('paused');

    const shown = renderReport({
      workflowId: 'cutover-budget',
      runStatus: 'RUNNING',
      activities: [{ activity: 'backfillRun', attempt: 1, details: beats.at(-1) }],
    } as unknown as Parameters<typeof renderReport>[0]);
    expect(shown).toContain('throttled: critical: 1 lock waits ≥ 1');

    await holder.query('COMMIT');
    await waiting;
    await waiter.query('COMMIT');
    const done = await run;
    expect(done.state).toBe('done');
    expect(done.rowsDone).toBe(80_000);
    expect(beats.filter((b) => b.rowsDone > held).length).toBeGreaterThan(0);
    expect(await mappingDifferences(db.pool)).toBe(0);
  });

  it('holds verification at the critical threshold too', async () => {
    await createAccounts(db.pool, 60_000);
    const c = await connect('fill');
    await runBackfill(c, change, {});
    await c.end();
    await db.pool.query(`DROP TABLE IF EXISTS lock_me; CREATE TABLE lock_me (x int)`);
    const holder = await connect('synthetic-load');
    const waiter = await connect('synthetic-load');
    onTestFinished(() => endAll(holder, waiter));
    await holder.query('BEGIN; LOCK TABLE lock_me');
    const waiting = waiter.query('BEGIN; LOCK TABLE lock_me').catch(() => {});
    await waitFor(async () => {
      const r = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE application_name = 'synthetic-load'
            AND wait_event_type = 'Lock'`,
      );
      return r.rowCount === 1;
    }, 'the application session to wait for its lock');
    const beats: (VerifyProgress & { throttled?: string | null })[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: VerifyProgress) => beats.push({ ...d }));
    const running = env.run(verify, {
      change,
      verify: { chunkSize: 1_000 },
      loadBudget: { ...fast, criticalLoad: { lockWaits: 1 } },
    }) as Promise<VerifyResult>;
    // The governor judges at the end of its first window and holds from then on, telling why.
    await waitFor(
      () => beats.some((b) => /^critical: 1 lock waits ≥ 1$/.test(b.throttled ?? '')),
      'verification to be held at the critical threshold',
    );
    const held = beats.at(-1)!.chunks;
    expect(held).toBeLessThan(60);
    const beatsWhenHeld = beats.length;
    await new Promise((r) => setTimeout(r, 2_500));
    // Still alive (it heartbeats while holding) and not one chunk further.
    expect(beats.length).toBeGreaterThan(beatsWhenHeld);
    expect(Math.max(...beats.slice(beatsWhenHeld).map((b) => b.chunks))).toBe(held);
    await holder.query('COMMIT');
    await waiting;
    await waiter.query('COMMIT');
    const result = await running;
    expect(result.ok).toBe(true);
    expect(result.sourceRows).toBe(60_000);
    expect(result.chunks).toBeGreaterThan(held);
  });

  /**
   * The application: three sessions inserting one row per transaction as fast as they can. The
   * migration's unit of work: 60 ms holding a lock that stops every insert (SHARE mode conflicts
   * with their ROW EXCLUSIVE), or the same 60 ms doing nothing the application feels.
   */
  async function stallingWorkload() {
    await db.pool.query(`DROP TABLE IF EXISTS app_writes; CREATE TABLE app_writes (x int)`);
    const app = await Promise.all([1, 2, 3].map(() => connect('synthetic-load')));
    onTestFinished(() => endAll(...app));
    let appStop = false;
    const writers = app.map(async (c) => {
      while (!appStop) await c.query('INSERT INTO app_writes VALUES (1)');
    });
    onTestFinished(async () => {
      appStop = true;
      await Promise.all(writers);
    });
    const budget = resolveLoadBudget({
      maxAppSlowdown: 0.3,
      windowMs: 1000,
      baselineMs: 400,
      rebaselineSeconds: 0,
      signals: ['writes'],
    })!;
    /** A governed worker: `run(stalls, seconds)` works under its governor and returns its states. */
    const worker = async (name: string) => {
      const c = await connect(name);
      onTestFinished(() => endAll(c));
      const governor = new LoadGovernor(c, budget);
      await governor.start();
      return async (stalls: boolean, seconds: number) => {
        const states: LoadGovernor['state'][] = [];
        const until = Date.now() + seconds * 1000;
        while (Date.now() < until) {
          const t0 = performance.now();
          await c.query('BEGIN');
          if (stalls) await c.query('LOCK TABLE app_writes IN SHARE MODE');
          await c.query('SELECT pg_sleep(0.06)');
          await c.query('COMMIT');
          await governor.afterWork(performance.now() - t0, 0);
          states.push(governor.state);
        }
        return states;
      };
    };
    return { worker };
  }

  const meanDuty = (states: LoadGovernor['state'][]) =>
    states.reduce((x, s) => x + s.duty, 0) / states.length;

  it("holds work that stalls the application's writes to its budget, and lets harmless work run at full speed", async () => {
    const { worker } = await stallingWorkload();
    const work = await worker('governed-work');
    // Stalling work: the application writes nothing while it runs, so the share of time it runs
    // is the slowdown; the governor brings it down to about the budget's aim (24 %).
    // (Other test files' writes count too, xids being cluster-wide, and no lock stalls them: on
    // a busy machine the measure is lower and the duty higher than alone. Hence the means and the
    // wide bounds.)
    const stalling = (await work(true, 8)).slice(-10);
    const duty = meanDuty(stalling);
    expect(duty).toBeGreaterThan(0.1);
    expect(duty).toBeLessThan(0.6);
    expect(stalling.at(-1)!.reason).toMatch(
      /^app writes 0\.\d\d× while copying, \d+ % of the time \(budget 0\.70×\)$/,
    );
    const measured = stalling.map((s) => s.appSlowdown ?? 0);
    const meanMeasured = measured.reduce((x, y) => x + y, 0) / measured.length;
    expect(meanMeasured).toBeGreaterThan(0.05);
    expect(meanMeasured).toBeLessThan(0.45);
    // The same work without the lock: the application keeps its pace, and the work goes back to
    // full speed.
    const fullSpeed = (s: LoadGovernor['state']) => s.duty === 1 && s.reason === null;
    const harmless: LoadGovernor['state'][] = [];
    for (let i = 0; i < 15 && !harmless.some(fullSpeed); i++)
      harmless.push(...(await work(false, 2)));
    expect(harmless.some(fullSpeed)).toBe(true);
  });

  it('holds parallel ranges to the budget together, not each to all of it', async () => {
    const { worker } = await stallingWorkload();
    // Two ranges of one copy (cutover's sessions of one kind share an application_name). Each
    // one's pauses hold the other's stalls as often as its working time does, so alone each
    // would see only its own half of the slowdown and aim all of the budget at it.
    const ranges = await Promise.all([worker('cutover-test-range'), worker('cutover-test-range')]);
    const runs = await Promise.all(ranges.map((work) => work(true, 10)));
    const tails = runs.map((r) => r.slice(-10));
    const duties = tails.map(meanDuty);
    // Together held as one copy would be (measured: 0.08 each; 0.24 and 0.22 when each judged
    // only its own part), and neither stopped.
    expect(duties[0]! + duties[1]!).toBeLessThan(0.3);
    for (const d of duties) expect(d).toBeGreaterThan(0.02);
    for (const t of tails) expect(t.at(-1)!.reason).toMatch(/, 2 ranges alike \(budget 0\.70×\)$/);
    console.log(
      'parallel duties',
      duties,
      tails.map((t) => t.at(-1)!.appSlowdown),
    );
  });
});

describe('key ranges', () => {
  it('range-parallel verification gives the result of one range, mismatch included', async () => {
    await createAccounts(db.pool, 12_000);
    await db.pool.query(`UPDATE accounts SET tenant = id % 40; ANALYZE accounts`);
    const c = await connect('fill');
    await runBackfill(c, change, {});
    await c.end();
    await db.pool.query(
      `UPDATE accounts_v2 SET full_name = 'tampered' WHERE tenant = 33 AND id = 73`,
    );
    const whole = await verifyTables(change, { chunkSize: 700 });
    const ranges = await backfillSplitRanges({ change, parts: 4 });
    expect(ranges.length).toBe(4);
    const parts = await Promise.all(
      ranges.map((r) => verifyTables(change, { chunkSize: 700, keyRange: r.range })),
    );
    expect(parts.reduce((n, p) => n + p.sourceRows, 0)).toBe(whole.sourceRows);
    expect(parts.reduce((n, p) => n + p.targetRows, 0)).toBe(whole.targetRows);
    expect(whole.ok).toBe(false);
    expect(parts.filter((p) => !p.ok).length).toBe(1);
    const diffs = (r: typeof whole) => r.mismatches.flatMap((m) => m.differences);
    expect(parts.flatMap(diffs)).toEqual(diffs(whole));
    expect(diffs(whole)).toEqual([{ key: ['33', '73'], problem: 'different' }]);
    // A target row outside every source key is still found by exactly one range.
    await db.pool.query(`UPDATE accounts_v2 SET full_name = 'user 73' WHERE tenant = 33 AND id = 73;
      INSERT INTO accounts_v2 VALUES (1000, 5, 'stray', 0, '')`);
    const again = await Promise.all(
      ranges.map((r) => verifyTables(change, { chunkSize: 700, keyRange: r.range })),
    );
    expect(again.flatMap(diffs)).toEqual([{ key: ['1000', '5'], problem: 'extra in target' }]);
  });

  it('a killed range resumes alone from its checkpoint, backfill and verify', async () => {
    await createAccounts(db.pool, 9_000);
    await db.pool.query(`UPDATE accounts SET tenant = id % 30; ANALYZE accounts`);
    await backfillUndo({ change });
    const ranges = await backfillSplitRanges({ change, parts: 3 });
    expect(ranges.length).toBe(3);
    const victim = ranges[1]!.range;
    const beats: BackfillProgress[] = [];
    const envKilled = new MockActivityEnvironment();
    envKilled.on('heartbeat', (d: BackfillProgress) => {
      beats.push(d);
      if (d.rowsDone >= 1_000) envKilled.cancel();
    });
    const [first, killed, third] = await Promise.allSettled([
      new MockActivityEnvironment().run(backfillRun, {
        change,
        range: ranges[0]!.range,
        throttle: { batchSize: 250 },
      }),
      envKilled.run(backfillRun, { change, range: victim, throttle: { batchSize: 250 } }),
      new MockActivityEnvironment().run(backfillRun, {
        change,
        range: ranges[2]!.range,
        throttle: { batchSize: 250 },
      }),
    ]);
    expect(first.status).toBe('fulfilled');
    expect(third.status).toBe('fulfilled');
    expect(killed.status).toBe('rejected');
    const checkpoint = beats.at(-1)!;
    expect(checkpoint.range).toEqual(victim);
    const others = [first, third].map((r) => (r as PromiseFulfilledResult<BackfillProgress>).value);
    const victimRows = 9_000 - others.reduce((n, p) => n + p.rowsDone, 0);
    expect(checkpoint.rowsDone).toBeLessThan(victimRows);

    // Only the killed range runs again, from its own heartbeat.
    const resumed = (await new MockActivityEnvironment({ heartbeatDetails: checkpoint }).run(
      backfillRun,
      { change, range: victim, throttle: { batchSize: 250 } },
    )) as BackfillProgress;
    expect(resumed.rowsDone).toBe(victimRows);
    // rowsInserted continues from the checkpoint: only the rows after it are inserted now.
    expect(resumed.rowsInserted).toBe(checkpoint.rowsInserted + victimRows - checkpoint.rowsDone);
    expect(await mappingDifferences(db.pool)).toBe(0);

    // Verification of the same range, stopped half-way and resumed from its heartbeat.
    const vbeats: VerifyProgress[] = [];
    const venv = new MockActivityEnvironment();
    venv.on('heartbeat', (d: VerifyProgress) => {
      vbeats.push({ ...d });
      if (d.chunks >= 2) venv.cancel();
    });
    await expect(
      venv.run(verify, { change, verify: { chunkSize: 500 }, keyRange: victim }),
    ).rejects.toThrow();
    const vcp = [...vbeats].reverse().find((b) => b.chunks >= 2)!;
    expect(vcp.sourceRows).toBeLessThan(victimRows);
    const vdone: VerifyResult = await new MockActivityEnvironment({ heartbeatDetails: vcp }).run(
      verify,
      {
        change,
        verify: { chunkSize: 500 },
        keyRange: victim,
      },
    );
    expect(vdone.ok).toBe(true);
    expect(vdone.sourceRows).toBe(victimRows);
  });
});
