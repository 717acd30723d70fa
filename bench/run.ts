/**
 * Backfill benchmark (not a test): npm run bench
 *
 *   BENCH_ROWS=2000000 (default)   rows in the source table
 *   BENCH_QUICK=1                  200k rows, short pgbench phases
 *   BENCH_PGBENCH_SECONDS=45       length of each pgbench phase (after a 3 s warm-up)
 *   DATABASE_URL=...               use that server (a database named cutover_bench is created);
 *                                  otherwise a throwaway cluster is started and removed
 *
 *   BENCH_REPEAT=3                 side-by-side repetitions; each figure is the median ratio
 *   BENCH_ONLY=backfill            only the single INSERT … SELECT vs the default backfill, in
 *                                  page order and in key order (no other guard, verify, index
 *                                  build or pgbench)
 *   BENCH_ONLY=load                skip the copy section, only the pgbench load section
 *   BENCH_RECORD=0                 print the figures, do not write bench/results/
 *
 * Measures, in one run: a single INSERT … SELECT vs the backfill (rows/s and ratio; the default
 * guard in the order it takes, page order on PostgreSQL ≥ 14, and forced into key order);
 * backfill + deferred index build vs the single statement into a fully indexed table; the
 * ghost-row guards compared; verification rows/s; a pgbench TPC-B load (on its own tables) alone
 * vs while the orders table is migrated (sync trigger + backfill; unthrottled, and under the
 * default load budget), with pgbench's failed transactions and its balance invariant checked, and
 * the copy compared row for row.
 * The workflow figures (history size, worker memory, recovery, TPC-B during whole runs) are
 * bench/workflow.ts's.
 *
 * Writes bench/results/<date>.json and .md (see bench/results.ts): the figures of this section
 * are merged into the day's file, so other benchmark sections can add theirs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../src/db/local-cluster';
import { clientTool } from '../src/db/pg-installs';
import { readServerVersion } from '../src/db/server-version';
import {
  DEFAULT_GHOST_GUARD,
  runBackfill,
  type GhostGuard,
  type BackfillThrottle,
} from '../src/backfill/core';
import { installSync, removeSync } from '../src/steps/sync/triggers';
import { verifyTables } from '../src/steps/verify/tables';
import { resolveLoadBudget } from '../src/backfill/load-budget';
import { median, recordResults, type Figure } from './results';
import { settle } from './settle';
import type { ResolvedChange } from '../src/plan/types';

const run = promisify(execFile);
const quick = process.env.BENCH_QUICK === '1';
const ROWS = Number(process.env.BENCH_ROWS ?? (quick ? 200_000 : 2_000_000));
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? (quick ? 8 : 45));
const REPEAT = Number(process.env.BENCH_REPEAT ?? (quick ? 1 : 3));
const ONLY = process.env.BENCH_ONLY ?? '';
const DB = 'cutover_bench';
const figures: Record<string, Figure> = {};

const change: ResolvedChange = {
  name: 'bench',
  connection: 'default',
  source: { schema: 'public', table: 'orders' },
  target: { schema: 'public', table: 'orders_v2' },
  sourceKey: ['id'],
  targetKey: ['id'],
  up: [
    { column: 'id', expression: '"id"::bigint' },
    { column: 'customer_id', expression: '"customer_id"' },
    { column: 'amount', expression: '"amount"::bigint' },
    { column: 'status', expression: '"status"' },
    { column: 'created_at', expression: '"created_at"' },
    { column: 'note', expression: '"note"' },
  ],
};

const TARGET_DDL = `CREATE TABLE orders_v2 (id bigint PRIMARY KEY, customer_id int NOT NULL,
  amount bigint NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL, note text)`;
const SECONDARY_INDEXES = [
  `CREATE INDEX orders_v2_customer ON orders_v2 (customer_id)`,
  `CREATE INDEX orders_v2_created ON orders_v2 (created_at)`,
  `CREATE INDEX orders_v2_status ON orders_v2 (status, amount)`,
];
const SINGLE = `INSERT INTO orders_v2 (id, customer_id, amount, status, created_at, note)
  SELECT id::bigint, customer_id, amount::bigint, status, created_at, note FROM orders`;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const lines: string[] = [];
function report(line: string) {
  lines.push(line);
  console.log(line);
}

async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await work();
  return [out, (performance.now() - t0) / 1000];
}

/** A pgbench at least as new as the server under test. */
let pgbenchPath = 'pgbench';

async function main() {
  let cluster: LocalCluster | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    console.log('starting a throwaway PostgreSQL cluster …');
    cluster = await startLocalCluster();
    adminUrl = cluster.url;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${DB}`;
  const url = u.toString();
  const db = new pg.Client({ connectionString: url, application_name: 'bench' });
  await db.connect();
  let pgVersion = '';
  pgbenchPath = (await clientTool('pgbench', (await readServerVersion(db)).major)).path;
  try {
    pgVersion = (await db.query('SHOW server_version')).rows[0].server_version;
    await bench(db, url);
  } finally {
    await db.end();
    if (cluster) await cluster.stop();
  }
  console.log('\n--- summary ---\n' + lines.join('\n'));
  if (process.env.BENCH_RECORD === '0') {
    console.log(JSON.stringify(figures, null, 2));
    return;
  }
  // A partial run is a section of its own: it replaces its figures, not those it did not measure.
  const files = await recordResults(ONLY ? `backfill-${ONLY}` : 'backfill', {
    postgres: pgVersion,
    rows: ROWS,
    repeat: REPEAT,
    quick,
    figures,
    log: lines,
  });
  console.log(`recorded in ${files.join(' and ')}`);
}

async function resetTarget(db: pg.Client, indexed: boolean) {
  await db.query(`DROP TABLE IF EXISTS orders_v2`);
  await db.query(TARGET_DDL);
  if (indexed) for (const s of SECONDARY_INDEXES) await db.query(s);
  await db.query('CHECKPOINT');
  // And the kernel's write-back of it, which would otherwise land in the timed statement.
  await run('sync', []);
}

async function backfill(
  db: pg.Client,
  guard: GhostGuard,
  throttle: Partial<BackfillThrottle> = {},
  isCancelled?: () => boolean,
  keyOrder = false,
) {
  const [res, secs] = await timed(() =>
    runBackfill(db, change, {
      ghostGuard: guard,
      keyOrder,
      throttle: { batchSize: 10_000, ...throttle },
      estimatedTotal: ROWS,
      isCancelled,
    }),
  );
  return { rows: res.progress.rowsDone, secs, rate: res.progress.rowsDone / secs, res };
}

/**
 * The application starts this long before the migration's work in the load benchmark, and its
 * throughput is taken from then on only: the load budget measures its baseline when the copy
 * starts, which in production meets an application already running (a baseline taken while
 * pgbench was still connecting was too low and let the first minute's copy overshoot).
 */
const WARMUP_SECONDS = 3;

async function pgbench(url: string, seconds: number): Promise<{ tps: number; failed: number }> {
  const u = new URL(url);
  const { stdout, stderr } = await run(
    pgbenchPath,
    [
      ...['-h', u.hostname, '-p', u.port || '5432', '-U', u.username || 'postgres'],
      ...['-n', '-c', '4', '-j', '2', '-P', '1', '-T', String(seconds + WARMUP_SECONDS), DB],
    ],
    { maxBuffer: 1 << 22 },
  );
  // Per-second progress lines ("progress: 4.0 s, 1723.1 tps, …"), after the warm-up.
  const perSecond = [...stderr.matchAll(/progress: ([\d.]+) s, ([\d.]+) tps/g)]
    .filter((m) => Number(m[1]) > WARMUP_SECONDS)
    .map((m) => Number(m[2]));
  if (!perSecond.length) throw new Error(`cannot read tps from pgbench output:\n${stderr}`);
  // pgbench 15 reports failures; a transaction cutover broke would count here.
  const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
  return { tps: perSecond.reduce((x, y) => x + y, 0) / perSecond.length, failed };
}

async function bench(db: pg.Client, url: string) {
  report(
    `rows: ${fmt(ROWS)}  (PostgreSQL ${(await db.query('SHOW server_version')).rows[0].server_version}), ${REPEAT} side-by-side repetition(s), figures are medians`,
  );
  await db.query(`CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL,
    amount int NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL, note text)`);
  await db.query(
    `INSERT INTO orders SELECT g, (g::bigint * 7919) % 100000, (g::bigint * 31) % 10000,
        (ARRAY['new','paid','shipped','done'])[1 + g % 4],
        timestamptz '2024-01-01' + (g % 500000) * interval '1 minute',
        CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END
       FROM generate_series(1, $1) g`,
    [ROWS],
  );
  await db.query('VACUUM ANALYZE orders');
  await db.query('SELECT count(*) FROM orders'); // warm the cache for everyone alike

  if (ONLY !== 'load') await copyBenchmarks(db, url);
  if (ONLY !== 'backfill') await loadBenchmark(db, url);
}

const spread = (xs: number[]) =>
  xs.length > 1 ? ` (runs: ${xs.map((x) => x.toFixed(2)).join(', ')})` : '';

async function copyBenchmarks(db: pg.Client, url: string) {
  const single: number[] = [];
  const guardRatios: Record<GhostGuard, number[]> = { debt: [], sweep: [], lock: [] };
  const keyOrderRatios: number[] = [];
  let mode = '';
  const deferred: number[] = [];
  const verifyRates: number[] = [];
  let peakRss = 0;
  for (let rep = 0; rep < REPEAT; rep++) {
    // 1. single statement vs backfill, both into a table with its primary key only; measured
    // back to back so the machine's load is about the same for both
    await resetTarget(db, false);
    const [, singleSecs] = await timed(() => db.query(SINGLE));
    const singleRate = ROWS / singleSecs;
    single.push(singleRate);
    report(
      `single INSERT…SELECT (PK only):         ${fmt(singleRate)} rows/s  (${singleSecs.toFixed(1)} s)`,
    );
    // Sync trigger installed as in a real run (the backfill does not fire it, but it is there).
    // The default guard also forced into key order, to show what page order gains.
    const runs: [GhostGuard, boolean][] = [
      [DEFAULT_GHOST_GUARD, false],
      [DEFAULT_GHOST_GUARD, true],
      ...(ONLY === 'backfill'
        ? []
        : (['debt', 'sweep', 'lock'] as GhostGuard[])
            .filter((g) => g !== DEFAULT_GHOST_GUARD)
            .map((g): [GhostGuard, boolean] => [g, false])),
    ];
    for (const [guard, keyOrder] of runs) {
      await resetTarget(db, false);
      await installSync(db, { change, directions: 'forward' });
      const b = await backfill(db, guard, {}, undefined, keyOrder);
      await removeSync(db, { change });
      if (keyOrder) keyOrderRatios.push(b.rate / singleRate);
      else guardRatios[guard].push(b.rate / singleRate);
      if (guard === DEFAULT_GHOST_GUARD && !keyOrder) mode = b.res.progress.mode;
      peakRss = Math.max(peakRss, process.resourceUsage().maxRSS / 1024);
      const label = `${guard}, ${b.res.progress.mode === 'ctid' ? 'page order' : 'key order'}`;
      report(
        `${`backfill (${label}):`.padEnd(40)}${fmt(b.rate)} rows/s  (${b.secs.toFixed(1)} s)  ratio ${(b.rate / singleRate).toFixed(2)}x`,
      );
    }
    if (ONLY === 'backfill') continue;
    // Verification of the copy just made (lock guard), whole table, one range.
    const [v, vSecs] = await timed(() => verifyTables(change, { client: db }));
    if (!v.ok) throw new Error('verification of the benchmark copy failed');
    verifyRates.push(v.sourceRows / vSecs);
    report(`verify (one range):                     ${fmt(v.sourceRows / vSecs)} rows/s`);

    // 2. deferred index build vs single statement into the fully indexed table
    await resetTarget(db, true);
    const [, idxSecs] = await timed(() => db.query(SINGLE));
    const idxRate = ROWS / idxSecs;
    await resetTarget(db, false);
    const [d, dSecs] = await timed(async () => {
      const b = await backfill(db, DEFAULT_GHOST_GUARD);
      for (const s of SECONDARY_INDEXES)
        await db.query(s.replace('CREATE INDEX', 'CREATE INDEX CONCURRENTLY'));
      return b;
    });
    deferred.push(d.rows / dSecs / idxRate);
    report(
      `single into fully indexed ${fmt(idxRate)} rows/s; backfill + CREATE INDEX CONCURRENTLY ${fmt(d.rows / dSecs)} rows/s  ratio ${(d.rows / dSecs / idxRate).toFixed(2)}x`,
    );
  }
  void url;
  const others =
    ONLY === 'backfill'
      ? ''
      : `; guard lock ${median(guardRatios.lock).toFixed(2)}x, sweep ${median(guardRatios.sweep).toFixed(2)}x`;
  figures.backfill_vs_insert_select = {
    value: median(guardRatios[DEFAULT_GHOST_GUARD]),
    unit: 'ratio',
    target: 0.9,
    runs: guardRatios[DEFAULT_GHOST_GUARD],
    note: `backfill with the default ghost guard (${DEFAULT_GHOST_GUARD}, ${mode === 'ctid' ? 'page order' : 'key order'}) ÷ one INSERT … SELECT; single ${fmt(median(single))} rows/s; forced into key order ${median(keyOrderRatios).toFixed(2)}x${others}`,
  };
  figures.backfill_key_order_vs_insert_select = {
    value: median(keyOrderRatios),
    unit: 'ratio',
    runs: keyOrderRatios,
    note: `backfill with the default ghost guard forced into key order (primary-key index) ÷ one INSERT … SELECT`,
  };
  if (ONLY === 'backfill') {
    report(
      `backfill (${DEFAULT_GHOST_GUARD}) ÷ INSERT…SELECT: ${figures.backfill_vs_insert_select.value!.toFixed(2)}x${spread(guardRatios[DEFAULT_GHOST_GUARD])}; key order ${figures.backfill_key_order_vs_insert_select.value!.toFixed(2)}x${spread(keyOrderRatios)}`,
    );
    return;
  }
  figures.deferred_index_vs_indexed_insert = {
    value: median(deferred),
    unit: 'ratio',
    target: 1.4,
    runs: deferred,
    note: 'backfill + CREATE INDEX CONCURRENTLY ÷ one INSERT … SELECT into the fully indexed table',
  };
  figures.verify_rows_per_s = {
    value: Math.round(median(verifyRates)),
    unit: 'rows/s',
    runs: verifyRates.map(Math.round),
    note: 'verification of the whole table in one range (count + md5 per 10k chunk, both sides)',
  };
  // history_events_* and worker_peak_rss_mb belong to bench/workflow.ts, which measures them on
  // real workflow runs with the worker in its own process; this process's peak is only logged.
  report(
    `peak RSS of this process (all backfills of ${fmt(ROWS)} rows): ${Math.round(peakRss)} MB`,
  );
  report(
    `backfill (${DEFAULT_GHOST_GUARD}) ÷ INSERT…SELECT: ${figures.backfill_vs_insert_select.value!.toFixed(2)}x${spread(guardRatios[DEFAULT_GHOST_GUARD])}; deferred index ${figures.deferred_index_vs_indexed_insert.value!.toFixed(2)}x${spread(deferred)}`,
  );
}

async function loadBenchmark(db: pg.Client, url: string) {
  // 3. pgbench TPC-B as the application (on its own tables), alone vs while orders is migrated
  // (sync trigger on, backfill running): unthrottled, and under the default load budget. Each
  // repetition measures alone / unthrottled / budget back to back.
  const u = new URL(url);
  await run(pgbenchPath, [
    ...['-h', u.hostname, '-p', u.port || '5432', '-U', u.username || 'postgres'],
    ...['-i', '-q', '-s', quick ? '3' : '10', DB],
  ]);
  const budget = resolveLoadBudget({})!;
  const tpsRatio: number[] = [];
  const rateRatio: number[] = [];
  let failed = 0;
  const migrate = async (mode: 'unthrottled' | 'budget') => {
    await resetTarget(db, false);
    await installSync(db, { change, directions: 'forward' });
    let stop = false;
    // What the governor did, for the report: its duty cycle and batch size over the run.
    const trace = {
      duty: [] as number[],
      batch: [] as number[],
      slowdown: [] as number[],
      reasons: new Map<string, number>(),
    };
    const app = pgbench(url, PGBENCH_SECONDS);
    await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
    // Keep the backfill busy for the rest of the pgbench run: start over when it finishes early.
    const bf = (async () => {
      let rows = 0;
      const t0 = performance.now();
      let first = true;
      while (!stop) {
        if (!first) {
          // The sync refuses TRUNCATE of either table while installed; nothing writes orders
          // in this benchmark, so taking it off for the TRUNCATE misses no write.
          await removeSync(db, { change });
          await db.query('TRUNCATE orders_v2');
          await installSync(db, { change, directions: 'forward' });
        }
        first = false;
        const r = await runBackfill(db, change, {
          throttle: { batchSize: 10_000 },
          loadBudget: mode === 'budget' ? budget : null,
          isCancelled: () => stop,
          onProgress: (p) => {
            if (!p.loadThrottle) return;
            trace.duty.push(p.loadThrottle.duty);
            trace.batch.push(p.batchSize);
            if (p.loadThrottle.appSlowdown !== null)
              trace.slowdown.push(p.loadThrottle.appSlowdown);
            const why = (p.throttled ?? 'none').replace(/[\d.]+/g, 'N');
            trace.reasons.set(why, (trace.reasons.get(why) ?? 0) + 1);
          },
        });
        rows += r.progress.rowsDone;
      }
      return rows / ((performance.now() - t0) / 1000);
    })();
    const p = await app;
    stop = true;
    const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
    const reasons = [...trace.reasons].sort((a, b) => b[1] - a[1]).slice(0, 3);
    const governor = trace.duty.length
      ? `mean duty ${mean(trace.duty).toFixed(2)}, mean measured slowdown ${mean(trace.slowdown).toFixed(2)}, mean batch ${fmt(mean(trace.batch))} rows, throttled by ${reasons.map(([r, n]) => `${r} (${n})`).join('; ')}`
      : '';
    return { ...p, rate: await bf, governor };
  };
  for (let rep = 0; rep < REPEAT; rep++) {
    await removeSync(db, { change });
    await settle(db);
    const alone = await pgbench(url, PGBENCH_SECONDS);
    await settle(db);
    const unthrottled = await migrate('unthrottled');
    await settle(db);
    const governed = await migrate('budget');
    failed += alone.failed + unthrottled.failed + governed.failed;
    tpsRatio.push(governed.tps / alone.tps);
    rateRatio.push(governed.rate / unthrottled.rate);
    if (governed.governor) report(`  governor: ${governed.governor}`);
    report(
      `pgbench -c 4: alone ${alone.tps.toFixed(0)} tps; unthrottled migration ${unthrottled.tps.toFixed(0)} tps (${(unthrottled.tps / alone.tps).toFixed(2)}x), backfill ${fmt(unthrottled.rate)} rows/s; budget 20% ${governed.tps.toFixed(0)} tps (${(governed.tps / alone.tps).toFixed(2)}x), backfill ${fmt(governed.rate)} rows/s (${(governed.rate / unthrottled.rate).toFixed(2)}x)`,
    );
  }
  // The last budget run's copy, completed with pgbench stopped, must match the source row for
  // row; pgbench's invariant (sum of deltas = every balance sum) must hold on both tables.
  await runBackfill(db, change, { throttle: { batchSize: 10_000 } });
  const inv = (
    await db.query<{ ok: boolean; diff: string }>(`
    SELECT (SELECT sum(delta) FROM pgbench_history) IS NOT DISTINCT FROM (SELECT sum(abalance) FROM pgbench_accounts)
       AND (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
       AND (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(tbalance) FROM pgbench_tellers) AS ok,
       ((SELECT count(*) FROM (SELECT id::bigint, customer_id, amount::bigint, status, created_at, note FROM orders
                               EXCEPT ALL SELECT * FROM orders_v2) a)
      + (SELECT count(*) FROM (SELECT * FROM orders_v2 EXCEPT ALL
                               SELECT id::bigint, customer_id, amount::bigint, status, created_at, note FROM orders) b))::text AS diff`)
  ).rows[0]!;
  await removeSync(db, { change });
  report(
    `pgbench failed transactions: ${failed}; pgbench balance invariant: ${inv.ok ? 'intact' : 'BROKEN'}; rows differing: ${inv.diff}`,
  );
  figures.tpcb_during_backfill_vs_alone = {
    value: median(tpsRatio),
    unit: 'ratio',
    target: 0.8,
    runs: tpsRatio,
    note: `TPC-B tps (pgbench -c 4 on its own tables) while orders is migrated (sync trigger + backfill under the default 20% budget) ÷ alone; failed transactions ${failed}; pgbench invariant ${inv.ok ? 'intact' : 'BROKEN'}; orders vs orders_v2 rows differing ${inv.diff}`,
  };
  figures.backfill_under_budget_vs_unthrottled = {
    value: median(rateRatio),
    unit: 'ratio',
    target: 0.4,
    runs: rateRatio,
    note: 'backfill rows/s under the budget ÷ unthrottled backfill rows/s, both under the same TPC-B load',
  };
}

await main();
