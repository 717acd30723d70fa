/**
 * The cut-over end to end (CLI, dev server, worker process, real PostgreSQL):
 * - pgbench TPC-B (-c 4, not router-aware: it always names pgbench_accounts) writes through a
 *   whole run: prepare, shift, swap, rollback window, cleanup. No failed transaction; during the
 *   rollback window the new table and the archive are row-for-row equal and both keep the
 *   balance invariant in one snapshot; afterwards the new table keeps it with every write; the
 *   longest pgbench transaction overlapping the swap stays within the bound.
 * - the same with an abort inside the rollback window: the original table is back under its
 *   name with every write.
 * - a long transaction on the table makes the swap wait visibly (its pid in the status) without
 *   queueing the application; then it proceeds. An abort that arrives while the swap waits ends
 *   in a truthful rolled-back state.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientTool } from '../../src/db/pg-installs';
import { seedOrders, startE2E, waitFor, type E2E } from './support';

/** A pgbench at least as new as the server under test. */
const pgbenchFor = async (): Promise<string> =>
  (await clientTool('pgbench', inject('pgMajor'))).path;

let e2e: E2E;
/** pgbench loops still running: stopped in afterEach so a failed test leaves no load behind. */
const loads = new Set<{ stop(): Promise<unknown> }>();
const LOCK_TIMEOUT_MS = 1000;
/** The longest pause between two swap attempts (workflows/blue-green.ts swapPause). */
const MAX_RETRY_INTERVAL_MS = 5000;

beforeAll(async () => {
  e2e = await startE2E('e2eswap');
  await e2e.startWorker();
}, 300_000);
afterEach(async () => {
  await Promise.all([...loads].map((l) => l.stop()));
  loads.clear();
});
afterAll(async () => {
  await e2e?.stop();
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

interface PgbenchTotals {
  transactions: number;
  failed: number;
  /** [end time in ms since epoch, latency in ms] per transaction. */
  log: Array<[number, number]>;
}

/**
 * pgbench in 4-second rounds until stop() (pgbench cannot be stopped cleanly mid-run, and its
 * per-transaction log is only complete when it exits), summing the rounds.
 */
function pgbenchLoad(url: string, logDir: string) {
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const totals: PgbenchTotals = { transactions: 0, failed: 0, log: [] };
  let stopping = false;
  let round = 0;
  const errors: string[] = [];
  const done = (async () => {
    while (!stopping) {
      const prefix = join(logDir, `r${++round}`);
      const r = await run(await pgbenchFor(), [
        '-n',
        '-c',
        '4',
        '-j',
        '2',
        '-T',
        '4',
        '--log',
        `--log-prefix=${prefix}`,
        url,
      ]);
      const tx = /number of transactions actually processed: (\d+)/.exec(r.out);
      const failed = /number of failed transactions: (\d+)/.exec(r.out);
      if (r.code !== 0 || !tx) errors.push(r.out);
      totals.transactions += Number(tx?.[1] ?? 0);
      totals.failed += Number(failed?.[1] ?? 0);
    }
    for (const f of readdirSync(logDir))
      for (const line of readFileSync(join(logDir, f), 'utf8').split('\n')) {
        // client_id transaction_no time script_no time_epoch time_us
        const p = line.trim().split(/\s+/);
        if (p.length < 6) continue;
        totals.log.push([Number(p[4]) * 1000 + Number(p[5]) / 1000, Number(p[2]) / 1000]);
      }
  })();
  const handle = {
    totals,
    errors,
    rounds: () => round,
    async stop() {
      stopping = true;
      await done;
      loads.delete(handle);
      return totals;
    },
  };
  loads.add(handle);
  return handle;
}

/** TPC-B's invariant: every balance table and the history sum to the same total. */
async function balances(client: pg.ClientBase, accounts: string) {
  const { rows } = await client.query<{ a: string; b: string; t: string; h: string }>(
    `SELECT (SELECT sum(abalance) FROM ${accounts})::text AS a,
            (SELECT sum(bbalance) FROM pgbench_branches)::text AS b,
            (SELECT sum(tbalance) FROM pgbench_tellers)::text AS t,
            (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS h`,
  );
  return rows[0]!;
}

const PGBENCH_PLAN = (name: string, windowSeconds: number) => `name: ${name}
source: public.pgbench_accounts
target:
  table: pgbench_accounts_v2
  like: source
  alter:
    - ALTER TABLE pgbench_accounts_v2 ALTER COLUMN abalance TYPE bigint
mapping:
  up: {}
  down: {}
backfill:
  batchSize: 5000
shift:
  steps:
    - { percent: 10, monitorSeconds: 1 }
    - { percent: 100, monitorSeconds: 1 }
run:
  rollbackWindowSeconds: ${windowSeconds}
`;

async function initPgbench(): Promise<void> {
  await e2e.db.pool.query(`DROP SCHEMA IF EXISTS cutover CASCADE;
    DO $$ DECLARE t text; BEGIN
      FOR t IN SELECT relname FROM pg_class WHERE relname LIKE 'pgbench_accounts_%' AND relkind IN ('r', 'v') LOOP
        EXECUTE format('DROP %s IF EXISTS %I CASCADE', CASE WHEN t IN (SELECT viewname FROM pg_views) THEN 'VIEW' ELSE 'TABLE' END, t);
      END LOOP; END $$;`);
  const r = await run(await pgbenchFor(), ['-i', '-s', '1', '--foreign-keys', '-q', e2e.db.url]);
  expect(r.code, r.out).toBe(0);
}

async function finished(plan: string) {
  return waitFor(
    `run ${plan} to finish`,
    async () => {
      const d = await e2e.handle(plan).describe();
      return d.status.name === 'RUNNING' ? undefined : e2e.handle(plan).result();
    },
    240_000,
    500,
  );
}

/** Start and end (ms) of the swap attempt that committed, from the run's history. */
async function swapWindow(plan: string): Promise<[number, number]> {
  const history = await e2e.handle(plan).fetchHistory();
  const events = history.events ?? [];
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
    Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  let window: [number, number] | undefined;
  for (const e of events) {
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(id, e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    if (e.activityTaskStartedEventAttributes)
      started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), ms(e.eventTime));
    if (e.activityTaskCompletedEventAttributes) {
      const sid = String(e.activityTaskCompletedEventAttributes.scheduledEventId);
      if (scheduled.get(sid) === 'swapAttempt') window = [started.get(sid)!, ms(e.eventTime)];
    }
  }
  if (!window) throw new Error('no swapAttempt in the history');
  return window;
}

describe('swap under pgbench TPC-B load (not router-aware)', () => {
  it('a whole run: nothing lost, no failed transaction, one short wait at the swap', async () => {
    await initPgbench();
    const PLAN = 'e2e_swap_pgbench';
    const planFile = e2e.writePlan(PLAN, PGBENCH_PLAN(PLAN, 15));
    const load = pgbenchLoad(e2e.db.url, join(e2e.tmp, 'pgbench-full'));
    await waitFor('pgbench to run a round', async () => load.rounds() > 1);

    const started = await e2e.cli(['start', planFile, '--auto-approve', 'all']);
    expect(started.code, started.stderr).toBe(0);
    const inWindow = await waitFor(
      'the swap and its rollback window',
      async () => {
        const s = await e2e.status(PLAN);
        if (s.state === 'failed' || s.state === 'rolled-back') throw new Error(JSON.stringify(s));
        return s.swap?.state === 'swapped' && s.windowEndsAt ? s : undefined;
      },
      240_000,
      300,
    );
    const archive = inWindow.swap!.archive;
    expect(archive).toMatch(/^pgbench_accounts_old_\d{14}$/);

    // During the window, under load, in ONE snapshot: archive = new table, invariant on both.
    let inWindowSums = '';
    const snap = new pg.Client({ connectionString: e2e.db.url });
    await snap.connect();
    try {
      await snap.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const diff = await snap.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (
           (SELECT aid, bid, abalance::bigint, filler FROM pgbench_accounts
            EXCEPT ALL SELECT aid, bid, abalance::bigint, filler FROM ${archive})
           UNION ALL
           (SELECT aid, bid, abalance::bigint, filler FROM ${archive}
            EXCEPT ALL SELECT aid, bid, abalance::bigint, filler FROM pgbench_accounts)) d`,
      );
      expect(diff.rows[0]!.n).toBe(0);
      const onNew = await balances(snap, 'pgbench_accounts');
      const onArchive = await balances(snap, archive);
      expect(new Set([onNew.a, onNew.b, onNew.t, onNew.h]).size).toBe(1);
      expect(new Set([onArchive.a, onArchive.b, onArchive.t, onArchive.h]).size).toBe(1);
      inWindowSums = `new table ${onNew.a}, archive ${onArchive.a}`;
      await snap.query('COMMIT');
    } finally {
      await snap.end();
    }

    const result = await finished(PLAN);
    expect(result.outcome).toBe('completed');
    // A few more rounds after cleanup, on the new table under the old name.
    const roundsAtEnd = load.rounds();
    await waitFor('pgbench rounds after cleanup', async () => load.rounds() > roundsAtEnd + 1);
    const totals = await load.stop();
    expect(load.errors).toEqual([]);
    expect(totals.failed).toBe(0);
    expect(totals.transactions).toBeGreaterThan(100);

    // Every write is on the new table: the invariant holds with all of pgbench's history.
    const after = await balances(e2e.db.pool as unknown as pg.ClientBase, 'pgbench_accounts');
    expect(new Set([after.a, after.b, after.t, after.h]).size).toBe(1);
    const [{ type }] = (
      await e2e.db.pool.query<{ type: string }>(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'abalance'`,
      )
    ).rows as [{ type: string }];
    expect(type).toBe('bigint');
    const left = await e2e.db.pool.query<{ n: number; views: number; fk: string }>(
      `SELECT (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'cutover_sync%') AS n,
              (SELECT count(*)::int FROM pg_views WHERE viewname = 'pgbench_accounts_v2') AS views,
              (SELECT confrelid::regclass::text FROM pg_constraint WHERE conname = 'pgbench_history_aid_fkey') AS fk`,
    );
    expect(left.rows[0]).toEqual({ n: 0, views: 0, fk: 'pgbench_accounts' });

    // The longest pgbench transaction that overlapped the swap's committing attempt.
    const [from, to] = await swapWindow(PLAN);
    const during = totals.log.filter(([end, lat]) => end >= from && end - lat <= to);
    const longest = Math.max(0, ...during.map(([, lat]) => lat));
    console.log(
      `pgbench: ${totals.transactions} transactions, ${totals.failed} failed; ${during.length} overlapped the swap (${to - from} ms), longest ${longest.toFixed(1)} ms; invariant on new table ${after.a}, in one snapshot of the window: ${inWindowSums} (archive ${inWindow.swap?.archive})`,
    );
    expect(during.length).toBeGreaterThan(0);
    expect(longest).toBeLessThan(LOCK_TIMEOUT_MS + MAX_RETRY_INTERVAL_MS);
  }, 480_000);

  it('an abort inside the rollback window swaps back: the original table holds every write', async () => {
    await initPgbench();
    const PLAN = 'e2e_swap_back';
    const planFile = e2e.writePlan(PLAN, PGBENCH_PLAN(PLAN, 600));
    const load = pgbenchLoad(e2e.db.url, join(e2e.tmp, 'pgbench-back'));
    await waitFor('pgbench to run a round', async () => load.rounds() > 1);
    expect((await e2e.cli(['start', planFile, '--auto-approve', 'all'])).code).toBe(0);
    await waitFor(
      'the swap',
      async () => {
        const s = await e2e.status(PLAN);
        if (s.state === 'failed' || s.state === 'rolled-back') throw new Error(JSON.stringify(s));
        return s.swap?.state === 'swapped' && s.windowEndsAt ? s : undefined;
      },
      240_000,
      300,
    );
    // Writes after the swap land on the new table; let pgbench make some.
    const r0 = load.rounds();
    await waitFor('pgbench rounds after the swap', async () => load.rounds() > r0 + 1);
    expect((await e2e.cli(['abort', PLAN, '--reason', 'late problem'])).code).toBe(0);
    const result = await finished(PLAN);
    expect(result.outcome).toBe('rolled-back');
    expect(result.undone[0]).toBe('swap.swap');
    const s = await e2e.status(PLAN);
    expect(s.state).toBe('rolled-back');
    expect(s.swap?.state).toBe('swapped-back');
    const r1 = load.rounds();
    await waitFor('pgbench rounds after the swap-back', async () => load.rounds() > r1 + 1);
    const totals = await load.stop();
    expect(load.errors).toEqual([]);
    expect(totals.failed).toBe(0);
    // The original table (integer balances again) carries every write, before and after.
    const after = await balances(e2e.db.pool as unknown as pg.ClientBase, 'pgbench_accounts');
    expect(new Set([after.a, after.b, after.t, after.h]).size).toBe(1);
    const state = await e2e.db.pool.query(
      `SELECT format_type(atttypid, atttypmod) AS type,
              to_regclass('pgbench_accounts_v2') IS NULL AS new_gone,
              (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'cutover_sync%') AS triggers
         FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'abalance'`,
    );
    expect(state.rows[0]).toEqual({ type: 'integer', new_gone: true, triggers: 0 });
  }, 480_000);
});

describe('a long transaction on the table', () => {
  const plan = (name: string) => `name: ${name}
source: public.orders
target:
  table: orders_v2
  like: source
  alter:
    - ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint
mapping:
  up: {}
  down: {}
stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }, { kind: backfill }, { kind: index }]
  - name: validate
    steps: [{ kind: verify }]
  - name: approve
    steps: [{ kind: approval, gate: swap }]
  - name: swap
    steps: [{ kind: swap, lockTimeoutMs: 500 }]
  - name: cleanup
    steps: [{ kind: cleanup }]
run:
  rollbackWindowSeconds: 0
`;

  async function atSwapWithBlocker(name: string) {
    await e2e.db.pool.query('DROP SCHEMA IF EXISTS cutover CASCADE');
    await seedOrders(e2e.db, 200);
    const planFile = e2e.writePlan(name, plan(name));
    expect((await e2e.cli(['start', planFile])).code).toBe(0);
    await waitFor(
      'the swap gate',
      async () => (await e2e.status(name)).waitingGates.includes('swap'),
      120_000,
    );
    const blocker = new pg.Client({ connectionString: e2e.db.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM orders');
    const pid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
      .pid;
    await new Promise((r) => setTimeout(r, 800)); // older than the swap's lock_timeout
    expect((await e2e.cli(['approve', name, 'swap'])).code).toBe(0);
    const waiting = await waitFor(
      'the swap to name the blocker',
      async () => {
        const s = await e2e.status(name);
        return s.swap?.waitingFor?.includes(`pid ${pid}`) ? s : undefined;
      },
      60_000,
      200,
    );
    return { blocker, pid, waiting };
  }

  it('makes the swap wait visibly, without queueing the application, then proceed', async () => {
    const name = 'e2e_swap_blocked';
    const { blocker, waiting } = await atSwapWithBlocker(name);
    expect(waiting.swap!.state).toBe('waiting');
    expect(waiting.swap!.waitingFor).toMatch(
      /waiting for pid \d+ \(transaction open [\d.]+s, idle in transaction\): SELECT pg_backend_pid/,
    );
    const shown = await e2e.cli(['status', name]);
    expect(shown.stdout).toMatch(/swap wait {2}waiting for pid/);
    // The application is not queued behind a waiting ACCESS EXCLUSIVE request: a write
    // completes while the blocker is still open (queued, it would wait for the blocker's end,
    // which only comes below, and hit its statement_timeout).
    const app = new pg.Client({ connectionString: e2e.db.url, statement_timeout: 30_000 });
    await app.connect();
    try {
      await app.query(`UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 1`);
    } finally {
      await app.end();
    }
    expect((await e2e.status(name)).swap!.state).toBe('waiting');
    await blocker.query('COMMIT');
    await blocker.end();
    const result = await finished(name);
    expect(result.outcome).toBe('completed');
    const s = await e2e.status(name);
    expect(s.swap?.state).toBe('finished');
    const t = await e2e.db.pool.query(
      `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'`,
    );
    expect(t.rows[0]).toEqual({ type: 'bigint' });
    expect(
      (await e2e.db.pool.query(`SELECT amount_cents FROM orders WHERE id = 1`)).rows[0],
    ).toEqual({ amount_cents: 11 });
  }, 300_000);

  it('an abort while the swap waits rolls back truthfully, nothing swapped, nothing lost', async () => {
    const name = 'e2e_swap_abort_wait';
    const { blocker } = await atSwapWithBlocker(name);
    expect((await e2e.cli(['abort', name, '--reason', 'no window today'])).code).toBe(0);
    await waitFor('the rollback to start', async () => {
      const s = await e2e.status(name);
      return s.state === 'rolling-back' || s.state === 'rolled-back';
    });
    await blocker.query('COMMIT');
    await blocker.end();
    const result = await finished(name);
    expect(result.outcome).toBe('rolled-back');
    const s = await e2e.status(name);
    expect(s).toMatchObject({ state: 'rolled-back', abortReason: 'aborted: no window today' });
    expect(s.swap?.state).toBe('not-swapped');
    const t = await e2e.db.pool.query(
      `SELECT format_type(atttypid, atttypmod) AS type, to_regclass('orders_v2') IS NULL AS gone,
              (SELECT count(*)::int FROM orders) AS n
         FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'id'`,
    );
    expect(t.rows[0]).toEqual({ type: 'integer', gone: true, n: 200 });
  }, 300_000);
});
