/**
 * The backfillColumn step's loop (src/steps/backfillColumn/run.ts) against real PostgreSQL: it
 * resumes after a SIGKILL of the process running it with no row updated twice and none missed
 * (a trigger logs every row UPDATE), it obeys the plan's control row (`cutover pause / throttle`)
 * and the load budget's critical limits, saying why it holds back.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearBackfillControl, setBackfillControl } from '../../src/backfill/control';
import { renderReport } from '../../src/cli/render-status';
import { defaultLoadBudget } from '../../src/backfill/load-budget';
import { runColumnBackfill, type ColumnBackfillProgress } from '../../src/steps/backfillColumn/run';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createItems } from './writers';

let db: TestDatabase;
let client: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase('colstep');
  client = new pg.Client({ connectionString: db.url, application_name: 'cutover-test' });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});
beforeEach(async () => {
  await createItems(db.pool, 20_000);
  await db.pool.query(`ALTER TABLE items ADD COLUMN email_lower text`);
  await clearBackfillControl(client, 'colfill');
});

const step = (batchSize = 200) => ({
  kind: 'backfillColumn' as const,
  id: 'expand.backfillColumn',
  table: 'public.items',
  column: 'email_lower',
  expression: 'lower(email)',
  batchSize,
  pauseMs: 0,
});

async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 60_000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const wrongRows = async () =>
  Number(
    (
      await db.pool.query(
        `SELECT count(*) AS n FROM items WHERE email_lower IS DISTINCT FROM lower(email)`,
      )
    ).rows[0].n,
  );

describe('backfillColumn step loop', () => {
  it('resumes after SIGKILL of its process: every row updated exactly once, none missed', async () => {
    // Every row UPDATE is logged, whatever it changes: a row walked twice with an update shows
    // up as two entries.
    await db.pool.query(`
      CREATE TABLE update_log (id bigint NOT NULL);
      CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO update_log VALUES (NEW.id); RETURN NULL; END $$;
      CREATE TRIGGER log_update AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION log_update();`);
    // The pace `cutover throttle colfill --sleep 15ms` would set: slow enough to kill mid-way.
    await setBackfillControl(client, 'colfill', { sleepMs: 15 });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'cutover-colfill-'));
      const cpFile = join(dir, 'checkpoint.json');
      const logFile = join(dir, 'log.jsonl');
      const script = join(import.meta.dirname, 'fixtures', 'backfill-column-child.ts');
      const start = () =>
        spawn(process.execPath, ['--import', 'tsx', script, db.url, cpFile, logFile], {
          stdio: ['ignore', 'inherit', 'inherit'],
        });
      const checkpoint = () =>
        existsSync(cpFile)
          ? (JSON.parse(readFileSync(cpFile, 'utf8')) as ColumnBackfillProgress)
          : null;

      const first = start();
      const firstExit = new Promise((r) => first.once('exit', r));
      await waitFor(
        () => (checkpoint()?.rowsScanned ?? 0) >= 6_000,
        'the first run to fill some rows',
      );
      first.kill('SIGKILL');
      await firstExit;
      const cp = checkpoint()!;
      expect(cp.rowsScanned).toBeLessThan(20_000);
      const updatedBeforeKill = Number(
        (await db.pool.query(`SELECT count(*) AS n FROM update_log`)).rows[0].n,
      );
      // The kill left work undone.
      expect(await wrongRows()).toBeGreaterThan(0);

      const second = start();
      expect(await new Promise((r) => second.once('exit', r))).toBe(0);
      const log = readFileSync(logFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, ColumnBackfillProgress>);
      expect(log.map((e) => Object.keys(e)[0])).toEqual(['start', 'start', 'end']);
      expect(log[1]!.start).toEqual(cp); // the second process began at the last checkpoint
      const end = log[2]!.end!;
      expect(end.state).toBe('done');
      // At most the one batch committed after the last checkpoint write is walked again; its
      // rows already hold the value, so it updates none of them.
      expect(updatedBeforeKill - cp.rowsUpdated).toBeLessThanOrEqual(200);
      expect(end.rowsUpdated).toBe(cp.rowsUpdated + (20_000 - updatedBeforeKill));

      expect(await wrongRows()).toBe(0);
      const counts = await db.pool.query(
        `SELECT count(*)::int AS updates, count(DISTINCT id)::int AS rows,
                (SELECT count(*)::int FROM items) AS items FROM update_log`,
      );
      expect(counts.rows[0]).toEqual({ updates: 20_000, rows: 20_000, items: 20_000 });
    } finally {
      await db.pool.query(
        `DROP TABLE IF EXISTS update_log; DROP FUNCTION IF EXISTS log_update() CASCADE`,
      );
    }
  });

  it('obeys the control row: paused it holds and says so; a new batch size takes effect', async () => {
    await setBackfillControl(client, 'colfill', { paused: true });
    const seen: ColumnBackfillProgress[] = [];
    const running = runColumnBackfill(client, step(1000), {
      plan: 'colfill',
      controlPollMs: 50,
      onProgress: (p) => seen.push(p),
    });
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await waitFor(() => seen.some((p) => p.state === 'paused'), 'the paused state');
      await new Promise((r) => setTimeout(r, 300));
      expect(await wrongRows()).toBe(20_000); // nothing filled while paused
      const paused = seen.filter((p) => p.state === 'paused');
      expect(paused.every((p) => p.throttled === 'paused' && p.rowsScanned === 0)).toBe(true);
      await setBackfillControl(other, 'colfill', { paused: false, batchSize: 250 });
      const done = await running;
      expect(done.state).toBe('done');
      expect(done.rowsUpdated).toBe(20_000);
      // 250-row batches: 80 of them (plus the short last one), not 20 of 1000.
      expect(done.batches).toBeGreaterThanOrEqual(80);
      expect(seen.filter((p) => p.state === 'running').every((p) => p.batchSize === 250)).toBe(
        true,
      );
      expect(await wrongRows()).toBe(0);
    } finally {
      await other.end();
    }
  });

  it('pauses over the load budget’s critical load and says why, then finishes', async () => {
    await setBackfillControl(client, 'colfill', { sleepMs: 10 });
    // Two application sessions busy for 4 s: over `criticalLoad.activeBackends: 1`.
    const sleepers = await Promise.all(
      [1, 2].map(async () => {
        const c = new pg.Client({ connectionString: db.url, application_name: 'app-report' });
        await c.connect();
        return c;
      }),
    );
    const busy = sleepers.map((c) => c.query(`SELECT pg_sleep(4)`));
    const seen: ColumnBackfillProgress[] = [];
    try {
      const done = await runColumnBackfill(client, step(100), {
        plan: 'colfill',
        loadBudget: {
          ...defaultLoadBudget,
          criticalLoad: { activeBackends: 1 },
          baselineMs: 200,
          windowMs: 500,
        },
        onProgress: (p) => seen.push(p),
      });
      expect(done.state).toBe('done');
      expect(await wrongRows()).toBe(0);
      const held = seen.filter((p) => p.throttled?.startsWith('critical:'));
      expect(held.length).toBeGreaterThan(0);
      expect(held[0]!.throttled).toMatch(/^critical: \d+ active backends ≥ 1$/);
      expect(held.some((p) => p.state === 'paused')).toBe(true);
      // `cutover status` renders the activity's heartbeat details: the reason is shown.
      const shown = renderReport({
        workflowId: 'cutover-colfill',
        runStatus: 'RUNNING',
        activities: [{ activity: 'backfillColumnRun', attempt: 1, details: held[0] }],
      } as unknown as Parameters<typeof renderReport>[0]);
      expect(shown).toMatch(/backfillColumnRun \[[#-]+\] \d+\/(\d+|\?) rows walked, \d+ updated/);
      expect(shown).toContain(`throttled: ${held[0]!.throttled}`);
    } finally {
      await Promise.all(busy);
      await Promise.all(sleepers.map((c) => c.end()));
    }
  });
});
