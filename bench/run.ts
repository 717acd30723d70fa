/**
 * Backfill benchmark (not a test): npm run bench
 *
 *   BENCH_ROWS=2000000 (default)   rows in the source table
 *   BENCH_QUICK=1                  200k rows, short pgbench phases
 *   BENCH_PGBENCH_SECONDS=20       length of each pgbench phase
 *   DATABASE_URL=...               use that server (a database named cutover_bench is created);
 *                                  otherwise a throwaway cluster is started and removed
 *
 * Prints, in one run on one table: a single INSERT … SELECT vs the keyset backfill (rows/s and
 * ratio); backfill + deferred index build vs the single statement into a fully indexed table;
 * the ghost-row guards compared; and a pgbench TPC-B load alone vs with the backfill running
 * (unthrottled and adaptive).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { startLocalCluster, type LocalCluster } from '../src/db/local-cluster';
import { postgresTool } from '../src/tools';
import {
  DEFAULT_GHOST_GUARD,
  runBackfill,
  type GhostGuard,
  type BackfillThrottle,
} from '../src/backfill/core';
import { installSync, removeSync } from '../src/steps/sync/triggers';
import type { ResolvedChange } from '../src/plan/types';

const run = promisify(execFile);
const quick = process.env.BENCH_QUICK === '1';
const ROWS = Number(process.env.BENCH_ROWS ?? (quick ? 200_000 : 2_000_000));
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? (quick ? 8 : 20));
const DB = 'cutover_bench';

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
  try {
    await bench(db, url);
  } finally {
    await db.end();
    if (cluster) await cluster.stop();
  }
  console.log('\n--- summary ---\n' + lines.join('\n'));
}

async function resetTarget(db: pg.Client, indexed: boolean) {
  await db.query(`DROP TABLE IF EXISTS orders_v2`);
  await db.query(TARGET_DDL);
  if (indexed) for (const s of SECONDARY_INDEXES) await db.query(s);
  await db.query('CHECKPOINT');
}

async function backfill(
  db: pg.Client,
  guard: GhostGuard,
  throttle: Partial<BackfillThrottle> = {},
  isCancelled?: () => boolean,
) {
  const [res, secs] = await timed(() =>
    runBackfill(db, change, {
      ghostGuard: guard,
      throttle: { batchSize: 10_000, ...throttle },
      estimatedTotal: ROWS,
      isCancelled,
    }),
  );
  return { rows: res.progress.rowsDone, secs, rate: res.progress.rowsDone / secs, res };
}

async function pgbench(url: string, seconds: number): Promise<number> {
  const u = new URL(url);
  const { stdout } = await run(
    postgresTool('pgbench'),
    [
      '-h',
      u.hostname,
      '-p',
      u.port || '5432',
      '-U',
      u.username || 'postgres',
      '-n',
      '-c',
      '4',
      '-j',
      '2',
      '-T',
      String(seconds),
      DB,
    ],
    { maxBuffer: 1 << 20 },
  );
  const m = /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`cannot read tps from pgbench output:\n${stdout}`);
  return Number(m[1]);
}

async function bench(db: pg.Client, url: string) {
  report(
    `rows: ${fmt(ROWS)}  (PostgreSQL ${(await db.query('SHOW server_version')).rows[0].server_version})`,
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

  if (process.env.BENCH_ONLY !== 'load') await copyBenchmarks(db);
  await loadBenchmark(db, url);
}

async function copyBenchmarks(db: pg.Client) {
  // 1. single statement vs backfill, both into a table with its primary key only
  await resetTarget(db, false);
  const [, singleSecs] = await timed(() => db.query(SINGLE));
  const singleRate = ROWS / singleSecs;
  report(
    `single INSERT…SELECT (PK only):         ${fmt(singleRate)} rows/s  (${singleSecs.toFixed(1)} s)`,
  );

  // Sync trigger installed as in a real run (the backfill does not fire it, but it is there).
  const guards: GhostGuard[] = ['none', 'sweep', 'lock'];
  const guardRates: Record<string, number> = {};
  for (const guard of guards) {
    await resetTarget(db, false);
    await installSync(db, { change, directions: 'forward' });
    const b = await backfill(db, guard);
    await removeSync(db, { change });
    guardRates[guard] = b.rate;
    report(
      `backfill 10k batches, guard=${guard.padEnd(5)}:     ${fmt(b.rate)} rows/s  (${b.secs.toFixed(1)} s)  ratio ${(b.rate / singleRate).toFixed(2)}x`,
    );
  }
  report(
    `ghost guards relative to none: sweep ${(guardRates.sweep! / guardRates.none!).toFixed(2)}x, lock ${(guardRates.lock! / guardRates.none!).toFixed(2)}x`,
  );

  // 2. deferred index build vs single statement into the fully indexed table
  await resetTarget(db, true);
  const [, idxSecs] = await timed(() => db.query(SINGLE));
  const idxRate = ROWS / idxSecs;
  report(
    `single INSERT…SELECT (fully indexed):   ${fmt(idxRate)} rows/s  (${idxSecs.toFixed(1)} s)`,
  );
  await resetTarget(db, false);
  const [deferred, deferredSecs] = await timed(async () => {
    const b = await backfill(db, DEFAULT_GHOST_GUARD);
    for (const s of SECONDARY_INDEXES)
      await db.query(s.replace('CREATE INDEX', 'CREATE INDEX CONCURRENTLY'));
    return b;
  });
  const deferredRate = deferred.rows / deferredSecs;
  report(
    `backfill (${DEFAULT_GHOST_GUARD}) + CREATE INDEX CONCURRENTLY after: ${fmt(deferredRate)} rows/s  (${deferredSecs.toFixed(1)} s)  ratio ${(deferredRate / idxRate).toFixed(2)}x`,
  );
}

async function loadBenchmark(db: pg.Client, url: string) {
  // 3. pgbench TPC-B load alone vs with the backfill running (the machine is shared, so the
  // load alone is measured before and after and averaged)
  const u = new URL(url);
  await run(postgresTool('pgbench'), [
    '-h',
    u.hostname,
    '-p',
    u.port || '5432',
    '-U',
    u.username || 'postgres',
    '-i',
    '-q',
    '-s',
    quick ? '5' : '10',
    DB,
  ]);
  const alone1 = await pgbench(url, PGBENCH_SECONDS);
  const loaded: { mode: string; tps: number; rate: number }[] = [];
  for (const mode of ['unthrottled', 'adaptive'] as const) {
    await resetTarget(db, false);
    await installSync(db, { change, directions: 'forward' });
    let stop = false;
    const throttle: Partial<BackfillThrottle> =
      mode === 'adaptive'
        ? {
            adaptive: true,
            batchSize: 10_000,
            targetBatchMs: Number(process.env.BENCH_ADAPTIVE_TARGET_MS ?? 40),
            minBatchSize: 1_000,
            sleepMs: 20,
            maxSleepMs: 1_000,
          }
        : {};
    // Keep the backfill busy for the whole pgbench run: start over when it finishes early.
    const bf = (async () => {
      let rows = 0;
      const t0 = performance.now();
      while (!stop) {
        await db.query('TRUNCATE orders_v2');
        rows += (await backfill(db, DEFAULT_GHOST_GUARD, throttle, () => stop)).rows;
      }
      return { rate: rows / ((performance.now() - t0) / 1000) };
    })();
    const tps = await pgbench(url, PGBENCH_SECONDS);
    stop = true;
    const b = await bf;
    await removeSync(db, { change });
    loaded.push({ mode, tps, rate: b.rate });
  }
  const alone2 = await pgbench(url, PGBENCH_SECONDS);
  const alone = (alone1 + alone2) / 2;
  report(
    `pgbench -c 4 alone:                     ${alone.toFixed(0)} tps (before ${alone1.toFixed(0)}, after ${alone2.toFixed(0)})`,
  );
  for (const l of loaded)
    report(
      `pgbench with ${l.mode.padEnd(11)} backfill:    ${l.tps.toFixed(0)} tps = ${(l.tps / alone).toFixed(2)}x alone; backfill ${fmt(l.rate)} rows/s`,
    );
}

await main();
