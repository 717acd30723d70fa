/**
 * The demo (`npm run demo`): everything runs locally and is stopped at the end.
 *   1. a throwaway PostgreSQL cluster; the example app's versioned migrations applied through
 *      the CLI (dry run, apply, status);
 *   2. a few hundred thousand orders, and an application writing to them through the router;
 *   3. the embedded Temporal dev server (SQLite, Web UI) and a worker;
 *   4. a blue-green change (orders.id int → bigint) run end to end with the CLI: backup, shadow
 *      table, two-way sync, backfill, verification, 10% → 50% → 100%, cleanup;
 *   5. at the cleanup gate, an independent exact verification of old vs new table;
 *   6. approval of the cleanup gate through the CLI.
 * `--keep` leaves the servers running afterwards so the run can be inspected in the Web UI.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import pg from 'pg';
import { verifyTables } from '../src/steps/verify/tables';
import { freePort, startLocalCluster } from '../src/db/local-cluster';
import { createRouter } from '../src/router';
import { connectWorker } from '../src/temporal/connection';
import { startDevServer } from '../src/temporal/dev-server';
import { runReport } from '../src/temporal/runs';
import { createWorker } from '../src/temporal/worker';

const cli = fileURLToPath(new URL('../bin/cutover.js', import.meta.url));
const plan = fileURLToPath(new URL('../plans/demo-widen-orders.yaml', import.meta.url));
const keep = process.argv.includes('--keep');
const ORDERS = Number(process.env.DEMO_ROWS ?? 300_000);

function say(text: string): void {
  console.log(`\n=== ${text}`);
}

function cutover(args: string[], env: NodeJS.ProcessEnv): void {
  console.log(`\n$ cutover ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...args], { env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cutover ${args.join(' ')} exited with ${r.status}`);
}

function cutoverAsync(args: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  console.log(`\n$ cutover ${args.join(' ')}`);
  const child = spawn(process.execPath, [cli, ...args], { env, stdio: 'inherit' });
  return new Promise((resolve) => child.on('close', resolve));
}

/** Application traffic: updates and inserts through the router while the change runs. */
async function application(url: string, stop: () => boolean): Promise<{ writes: number }> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const router = createRouter({
    pool,
    migration: 'demo_widen_orders',
    tables: { old: 'public.orders', new: 'public.orders_v2' },
  });
  await router.ready();
  let writes = 0;
  let nextId = ORDERS + 1;
  try {
    while (!stop()) {
      const id = 1 + Math.floor(Math.random() * ORDERS);
      try {
        await pool.query(
          `UPDATE ${router.table(id)} SET amount_cents = amount_cents + 1 WHERE id = $1`,
          [id],
        );
        const newId = nextId++;
        await pool.query(
          `INSERT INTO ${router.table(newId)} (id, user_id, amount_cents) VALUES ($1, 1, 100)`,
          [newId],
        );
        writes += 2;
      } catch (err) {
        // During cleanup the old table is renamed: at 100% nothing routes there any more, but a
        // write in flight at that moment can miss it. The demo just moves on.
        if (!/does not exist/.test((err as Error).message)) throw err;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await router.close();
    await pool.end();
  }
  return { writes };
}

const cluster = await startLocalCluster({ fast: true });
const work = mkdtempSync(join(tmpdir(), 'cutover-demo-'));
const [port, uiPort] = [await freePort(), await freePort()];
let server: Awaited<ReturnType<typeof startDevServer>> | undefined;
try {
  const env = {
    ...process.env,
    DATABASE_URL: cluster.url,
    TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    TEMPORAL_UI_URL: `http://127.0.0.1:${uiPort}`,
    CUTOVER_BACKUP_DIR: join(work, 'backups'),
  };
  Object.assign(process.env, env);
  say(`1. versioned migrations on a throwaway PostgreSQL (${cluster.url})`);
  cutover(['migrate', '--dry-run', '--to', '0002'], env);
  cutover(['migrate'], env);
  cutover(['status'], env);

  say(`2. ${ORDERS.toLocaleString()} orders`);
  const db = new pg.Client({ connectionString: cluster.url });
  await db.connect();
  await db.query(
    `INSERT INTO users (email, name, avatar_url) SELECT 'user' || g || '@example.com', 'User ' || g, 'a' FROM generate_series(1, 1000) g`,
  );
  await db.query(
    `INSERT INTO orders (id, user_id, amount_cents) SELECT g, 1 + g % 1000, g % 10000 FROM generate_series(1, $1::int) g`,
    [ORDERS],
  );
  await db.query('ANALYZE orders');
  await db.end();

  say('3. Temporal dev server and a worker');
  Runtime.install({ logger: new DefaultLogger('WARN') });
  server = await startDevServer({
    dbFile: join(work, 'temporal.db'),
    port,
    uiPort,
    headless: false,
  });
  console.log(`Temporal Web UI: ${server.uiUrl}`);
  const connection = await connectWorker({ address: server.address, namespace: 'default' });
  const worker = await createWorker(connection, 'default');

  say(
    '4. blue-green change: orders.id int → bigint, with the application writing through the router',
  );
  let done = false;
  const app = application(cluster.url, () => done);
  const temporal = new Client({
    connection: await Connection.connect({ address: server.address }),
  });
  const run = (async () => {
    // Asynchronous from here on: this process also runs the worker, which must keep answering.
    if ((await cutoverAsync(['plan', 'check', plan], env)) !== 0)
      throw new Error('plan check failed');
    const started = await cutoverAsync(
      [
        'start',
        plan,
        '--auto-approve',
        'shift',
        '--rollback-window',
        '5s',
        '--check-interval',
        '2s',
      ],
      env,
    );
    if (started !== 0) throw new Error('cutover start failed');
    // Follow the run until it waits at the cleanup gate: up to there both tables are kept equal
    // in both directions, whatever the application writes.
    let last = '';
    for (;;) {
      const report = await runReport(temporal, 'demo_widen_orders');
      const s = report.status;
      const backfill = report.activities.find((a) => a.activity === 'backfillRun')?.details;
      const line =
        `[${s?.stage ?? '-'}] ${s?.step ?? ''} route ${s?.routePercent ?? 0}%` +
        (backfill
          ? ` backfill ${String(backfill.rowsDone)}/${String(backfill.estimatedTotal)} rows, ${String(backfill.rowsPerSecond)} rows/s`
          : '');
      if (line !== last) console.log(line);
      last = line;
      if (report.runStatus !== 'RUNNING')
        throw new Error(`run ended early: ${report.failure ?? report.runStatus}`);
      if (s?.waitingGates.includes('cleanup')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    done = true;
    const { writes } = await app;
    console.log(`\nthe application made ${writes} writes through the router during the change`);

    say(
      '5. independent verification: old table vs new table, chunk by chunk, one snapshot per chunk',
    );
    // After the swap the new table carries the name orders and the old one is the run's archive.
    const swap = (await runReport(temporal, 'demo_widen_orders')).status?.swap;
    const swapped = swap?.state === 'swapped' ? swap.archive : undefined;
    console.log(
      swapped
        ? `the swap gave the new table the name orders; the old table is now ${swapped}`
        : 'no swap yet: the old table is orders, the new one orders_v2',
    );
    const verify = await verifyTables(
      {
        name: 'demo_verify',
        connection: 'default',
        source: { schema: 'public', table: swapped ?? 'orders' },
        target: { schema: 'public', table: swapped ? 'orders' : 'orders_v2' },
        sourceKey: ['id'],
        targetKey: ['id'],
        up: ['id', 'user_id', 'amount_cents', 'status', 'created_at'].map((c) => ({
          column: c,
          expression: `"${c}"`,
        })),
      },
      {},
    );
    console.log(
      `verification ${verify.ok ? 'PASSED' : 'FAILED'}: ${verify.sourceRows} rows in the old table, ${verify.targetRows} in the new, ` +
        `${verify.chunks} chunks compared, ${verify.mismatches.length} mismatching`,
    );
    if (!verify.ok) throw new Error('verification failed');

    say('6. approve the cleanup gate: stop syncing, archive the old table');
    if ((await cutoverAsync(['approve', 'demo_widen_orders', 'cleanup'], env)) !== 0)
      throw new Error('approve failed');
    const finished = await cutoverAsync(
      ['status', 'demo_widen_orders', '--watch', '--interval', '1s'],
      env,
    );
    if (finished !== 0) throw new Error('the blue-green run did not complete');
  })();
  await worker.runUntil(run);
  await connection.close();

  console.log(
    `\nInspect the run: temporal workflow show --address 127.0.0.1:${port} --workflow-id cutover-demo_widen_orders`,
  );
  if (keep) {
    console.log(`--keep: servers stay up (Web UI ${server.uiUrl}); Ctrl-C to stop`);
    await new Promise((r) => process.once('SIGINT', r));
  }
} finally {
  await server?.stop();
  await cluster.stop();
}
