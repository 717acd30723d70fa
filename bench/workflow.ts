/**
 * Workflow benchmark (not a test): npm run bench:workflow (also run by npm run bench)
 *
 *   BENCH_QUICK=1                       100k and 500k rows, a 500k-row recovery run
 *   BENCH_WORKFLOW_ROWS=100000,2000000  the sizes of the two history runs
 *   BENCH_RECOVERY_ROWS=1000000         the table of the recovery run
 *   DATABASE_URL=...                    use that server (a database named cutover_bench_wf is
 *                                       created); otherwise a throwaway cluster is started
 *
 * Runs the real thing: a `temporal server start-dev` (SQLite, free ports), `cutover worker` as a
 * child process, `cutover start <plan> --auto-approve all` of the standard widen-orders plan with
 * default settings (backup, shadow, sync, backfill, index, verify, route 10/50/100 %, swap,
 * cleanup), on two table sizes. It records, in bench/results/<date>.json:
 *
 *   history_events_100k, history_events_2m   events in the run's history (client fetchHistory)
 *   worker_peak_rss_mb                        peak resident set of the worker process during the
 *                                             run (/proc/<pid>/status), a fresh worker per size
 *   recovery_after_worker_kill_s              SIGKILL the worker during the backfill, start a new
 *                                             one: from its start of polling to the retried
 *                                             backfill heartbeating progress past the checkpoint
 *
 *   tpcb_during_migration_vs_alone            pgbench TPC-B (-c 4, on its own tables) during a
 *                                             whole run of a 1M-row table (backup through swap
 *                                             and cleanup, default load budget) ÷ the same load
 *                                             alone, from pgbench_history's rows (one per
 *                                             committed transaction) counted at both ends
 *
 * `--only history`, `--only recovery` or `--only load` runs one part (sections
 * workflow-history, workflow-recovery, workflow-load of the results file; the other parts'
 * figures stay as they were). BENCH_LOAD_ROWS (1000000), BENCH_LOAD_REPEAT (3),
 * BENCH_LOAD_ALONE_SECONDS (30) size the load part.
 *
 * The recovery run also checks that nothing was lost: the retried attempt goes on from the
 * checkpoint (rows done and last key never go back), and the finished run's table holds exactly
 * the source's rows.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import pg from 'pg';
import { freePort, startLocalCluster, type LocalCluster } from '../src/db/local-cluster';
import { startDevServer, type DevServer } from '../src/temporal/dev-server';
import { projectRoot } from '../src/tools';
import { statusQuery } from '../workflows/definitions';
import type { blueGreen } from '../workflows/blue-green';
import { clientTool } from '../src/db/pg-installs';
import { readServerVersion } from '../src/db/server-version';
import { median, recordResults, type Figure } from './results';
import { settle } from './settle';

const quick = process.env.BENCH_QUICK === '1';
const SIZES = (process.env.BENCH_WORKFLOW_ROWS ?? (quick ? '100000,500000' : '100000,2000000'))
  .split(',')
  .map(Number);
const RECOVERY_ROWS = Number(process.env.BENCH_RECOVERY_ROWS ?? (quick ? 500_000 : 1_000_000));
const LOAD_ROWS = Number(process.env.BENCH_LOAD_ROWS ?? (quick ? 200_000 : 1_000_000));
const LOAD_REPEAT = Number(process.env.BENCH_LOAD_REPEAT ?? (quick ? 1 : 3));
const LOAD_ALONE_SECONDS = Number(process.env.BENCH_LOAD_ALONE_SECONDS ?? (quick ? 10 : 30));
const DB = 'cutover_bench_wf';
const CLI = join(projectRoot, 'bin', 'cutover.js');

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let pgbenchPath = 'pgbench';
const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
// Each part is its own results section, so `--only` replaces only the figures it measured.
const PARTS = ['history', 'recovery', 'load'] as const;
type Part = (typeof PARTS)[number];
const only = process.argv.includes('--only')
  ? (process.argv[process.argv.indexOf('--only') + 1] as Part)
  : undefined;
if (only !== undefined && !PARTS.includes(only))
  throw new Error(`--only takes ${PARTS.join(', ')}, not ${String(only)}`);
const logs: Record<Part, string[]> = { history: [], recovery: [], load: [] };
let part: Part = 'history';
function report(line: string) {
  logs[part].push(line);
  console.log(line);
}

interface Child {
  proc: ChildProcess;
  output(): string;
  /** Date.now() when the first line containing `text` appeared, once it has. */
  seenAt(text: string): number | undefined;
  kill(): Promise<void>;
}

const children = new Set<Child>();

function startChild(args: string[], env: Record<string, string>): Child {
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const seen = new Map<string, number>();
  const collect = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  const child: Child = {
    proc,
    output: () => out,
    seenAt(text) {
      // Stamped at the first poll that finds it; callers poll every 50 ms.
      if (!seen.has(text) && out.includes(text)) seen.set(text, Date.now());
      return seen.get(text);
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      children.delete(child);
    },
  };
  children.add(child);
  return child;
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A field of /proc/<pid>/status in MB (VmHWM: peak resident set so far, VmRSS: current). */
function procMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/**
 * Samples the worker's resident set every 200 ms while a run goes on. VmHWM alone would report
 * the start-up peak (the worker bundles the workflow code with webpack before it polls), which
 * says nothing about how memory follows the row count.
 */
function sampleRss(pid: number) {
  let peak = procMb(pid, 'VmRSS');
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, procMb(pid, 'VmRSS'));
    } catch {
      // the worker is gone: the last peak stands
    }
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      return { peak, hwm: procMb(pid, 'VmHWM') };
    },
  };
}

const planYaml = (name: string) => `name: ${name}
source: public.orders
target:
  table: orders_v2
  like: source
  alter:
    - ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint
mapping:
  up: {}
  down: {}
shift:
  steps:
    - { percent: 10, monitorSeconds: 1 }
    - { percent: 50, monitorSeconds: 1 }
    - { percent: 100, monitorSeconds: 1 }
`;

/** A fresh orders table of `rows` rows (what the swap of an earlier run left is dropped). */
async function seed(db: pg.Client, rows: number) {
  await db.query(
    `DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP SCHEMA IF EXISTS cutover CASCADE`,
  );
  await db.query(`CREATE TABLE orders (
      id integer PRIMARY KEY,
      customer text NOT NULL,
      amount_cents integer NOT NULL CHECK (amount_cents >= 0),
      created_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z')`);
  await db.query(`CREATE INDEX orders_customer_idx ON orders (customer)`);
  await db.query(
    `INSERT INTO orders (id, customer, amount_cents)
       SELECT g, 'customer-' || (g % 97), g * 10 FROM generate_series(1, $1::int) g`,
    [rows],
  );
  await db.query('VACUUM ANALYZE orders');
}

/** Order-independent fingerprint of a table's rows. */
async function fingerprint(db: pg.Client, table: string) {
  const r = await db.query<{ rows: number; md5: string }>(
    `SELECT count(*)::int AS rows, md5(string_agg(md5(t::text), '' ORDER BY t.id)) AS md5
       FROM ${table} t`,
  );
  return r.rows[0]!;
}

interface Env {
  db: pg.Client;
  client: Client;
  env: Record<string, string>;
  tmp: string;
}

function cli(e: Env, args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...e.env },
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`cutover ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function startWorker(e: Env): Promise<{ worker: Child; pollingAt: number }> {
  const worker = startChild([CLI, 'worker'], e.env);
  // Bundling the workflows on a loaded machine can take minutes; this is not what is measured.
  const pollingAt = await waitFor(
    'the worker to poll',
    async () => {
      if (worker.proc.exitCode !== null)
        throw new Error(`worker exited ${worker.proc.exitCode}:\n${worker.output()}`);
      return worker.seenAt('worker polling');
    },
    300_000,
    50,
  );
  return { worker, pollingAt };
}

const startArgs = (e: Env, plan: string) => {
  const file = join(e.tmp, `${plan}.yaml`);
  writeFileSync(file, planYaml(plan));
  return [
    'start',
    file,
    '--auto-approve',
    'all',
    '--rollback-window',
    '0s',
    '--check-interval',
    '1s',
  ];
};

function startRun(e: Env, plan: string) {
  return cli(e, startArgs(e, plan));
}

/** The same without blocking this process (its pgbench rounds must go on meanwhile). */
async function startRunAsync(e: Env, plan: string) {
  await execFileAsync(process.execPath, [CLI, ...startArgs(e, plan)], {
    env: { ...process.env, ...e.env },
  });
}

const handle = (e: Env, plan: string) =>
  e.client.workflow.getHandle<typeof blueGreen>(`cutover-${plan}`);

/** The run's finished state: outcome, rows copied, and that the new table is the old one's rows. */
async function finish(e: Env, plan: string, before: { rows: number; md5: string }) {
  const result = await handle(e, plan).result();
  if (result.outcome !== 'completed')
    throw new Error(`run ${plan} ended ${result.outcome}: ${JSON.stringify(result)}`);
  const status = await handle(e, plan).query(statusQuery);
  // After the swap the new table holds the old name; the old one is the run's archive.
  const now = await fingerprint(e.db, 'public.orders');
  const archive = await fingerprint(e.db, `public."${status.swap!.archive}"`);
  const same =
    now.rows === before.rows &&
    now.md5 === before.md5 &&
    archive.rows === before.rows &&
    archive.md5 === before.md5;
  if (!same)
    throw new Error(
      `run ${plan}: tables differ from the source: before ${JSON.stringify(before)}, new ${JSON.stringify(now)}, archive ${JSON.stringify(archive)}`,
    );
  return status;
}

async function historyEvents(e: Env, plan: string) {
  const history = await handle(e, plan).fetchHistory();
  const byType: Record<string, number> = {};
  for (const ev of history.events ?? []) {
    // Each event carries exactly one `<type>EventAttributes` field: its name is the event's type.
    const attrs = Object.entries(ev).find(([k, v]) => k.endsWith('EventAttributes') && v);
    const name = attrs ? attrs[0].replace(/EventAttributes$/, '') : 'unknown';
    byType[name] = (byType[name] ?? 0) + 1;
  }
  return { total: history.events?.length ?? 0, byType };
}

async function historyRun(e: Env, rows: number) {
  const plan = `bench_history_${rows}`;
  await seed(e.db, rows);
  const before = await fingerprint(e.db, 'public.orders');
  const { worker } = await startWorker(e);
  try {
    const sampler = sampleRss(worker.proc.pid!);
    const t0 = performance.now();
    startRun(e, plan);
    await finish(e, plan, before);
    const secs = (performance.now() - t0) / 1000;
    const { peak: rss, hwm } = sampler.stop();
    const h = await historyEvents(e, plan);
    const kinds = ['activityTaskScheduled', 'workflowExecutionSignaled', 'timerStarted']
      .map((k) => `${k} ${h.byType[k] ?? 0}`)
      .join(', ');
    report(
      `${fmt(rows)} rows: run ${secs.toFixed(0)} s, history ${h.total} events (${kinds}), worker peak RSS during the run ${rss.toFixed(0)} MB (VmHWM with start-up ${hwm.toFixed(0)} MB); load ${load()}`,
    );
    return { rows, secs, events: h.total, byType: h.byType, rss, hwm, load: load() };
  } finally {
    await worker.kill();
  }
}

/** Heartbeat details and times of the plan's running backfill activity, if one is pending. */
async function backfillActivity(e: Env, plan: string) {
  const desc = await handle(e, plan).describe();
  const a = (desc.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'backfillRun');
  if (!a) return undefined;
  const payload = a.heartbeatDetails?.payloads?.[0];
  const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
    t?.seconds ? Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : 0;
  return {
    attempt: a.attempt ?? 1,
    lastStartedMs: ms(a.lastStartedTime),
    lastHeartbeatMs: ms(a.lastHeartbeatTime),
    details: payload
      ? (defaultPayloadConverter.fromPayload(payload) as {
          rowsDone: number;
          lastKey: unknown;
          pages?: { next: number } | null;
        })
      : undefined,
  };
}

const backfillDone = async (e: Env, plan: string) =>
  (await handle(e, plan).query(statusQuery)).stepsDone.includes('prepare.backfill');

/**
 * Orders checkpoints: the page cursor in page order, else the last key (a one-column key here)
 * as a number.
 */
const positionOf = (d: { lastKey: unknown; pages?: { next: number } | null }): number =>
  d.pages ? d.pages.next : Number(Array.isArray(d.lastKey) ? d.lastKey[0] : d.lastKey);

async function recoveryRun(e: Env, rows: number) {
  const plan = 'bench_recovery';
  await seed(e.db, rows);
  const before = await fingerprint(e.db, 'public.orders');
  const first = await startWorker(e);
  startRun(e, plan);
  // Far enough in that a restart from the first key would show, and far from the end.
  const checkpoint = await waitFor(
    'a backfill checkpoint at 5–70 % of the rows',
    async () => {
      const a = await backfillActivity(e, plan);
      const done = a?.details?.rowsDone ?? 0;
      if (done > rows * 0.7 || (await backfillDone(e, plan)))
        throw new Error(
          `the backfill got past 70 % of ${fmt(rows)} rows before a checkpoint was seen: take more rows (BENCH_RECOVERY_ROWS)`,
        );
      return done >= rows * 0.05 ? a!.details! : undefined;
    },
    600_000,
    50,
  );
  await first.worker.kill();
  const killedAt = Date.now();
  const { rows: copiedAtKill } = (
    await e.db.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM orders_v2`)
  ).rows[0]!;
  report(
    `recovery: SIGKILL at ${fmt(checkpoint.rowsDone)} rows checkpointed (${fmt(copiedAtKill)} in the new table) of ${fmt(rows)}; load ${load()}`,
  );
  // The replacement starts at once, as an orchestrator restarting the worker would.
  const second = await startWorker(e);
  try {
    const resumed = await waitFor(
      'the retried backfill to make progress',
      async () => {
        const a = await backfillActivity(e, plan);
        if (!a) {
          if (await backfillDone(e, plan))
            throw new Error('the backfill ended between two polls: no resumption seen');
          return undefined;
        }
        const d = a.details;
        const retried = a.attempt >= 2 && a.lastStartedMs > killedAt;
        if (!retried || a.lastHeartbeatMs <= a.lastStartedMs || !d) return undefined;
        // The retry counts from its checkpoint: fewer rows done means it started over, which
        // waiting for "more than the checkpoint" would hide as a slow recovery.
        if (d.rowsDone < checkpoint.rowsDone)
          throw new Error(
            `the retried backfill started over: ${d.rowsDone} rows done < checkpoint ${checkpoint.rowsDone}`,
          );
        return d.rowsDone > checkpoint.rowsDone
          ? { ...a, details: d, seenAt: Date.now() }
          : undefined;
      },
      300_000,
      50,
    );
    // Continuity: the retried attempt started from the checkpoint, not from the first key.
    if (positionOf(resumed.details) < positionOf(checkpoint))
      throw new Error(
        `the retried backfill went back: at ${positionOf(resumed.details)} (${resumed.details.pages ? 'page' : 'key'}) < checkpoint ${positionOf(checkpoint)}`,
      );
    const status = await finish(e, plan, before);
    if (status.rowsCopied !== rows)
      throw new Error(`recovery run copied ${status.rowsCopied} rows, not ${rows}`);
    const fromPolling = (resumed.seenAt - second.pollingAt) / 1000;
    const fromKill = (resumed.seenAt - killedAt) / 1000;
    const startedAfterPolling = (resumed.lastStartedMs - second.pollingAt) / 1000;
    report(
      `recovery: new worker polling → backfill progressing past the checkpoint ${fromPolling.toFixed(1)} s (attempt ${resumed.attempt} started ${startedAfterPolling.toFixed(1)} s after polling, first progress at ${fmt(resumed.details.rowsDone)} rows); SIGKILL → progress ${fromKill.toFixed(1)} s (worker start ${((second.pollingAt - killedAt) / 1000).toFixed(1)} s of it); run completed, ${fmt(status.rowsCopied ?? 0)} rows copied, new and archived table equal to the source; load ${load()}`,
    );
    return {
      fromPolling,
      fromKill,
      checkpoint: checkpoint.rowsDone,
      resumedAt: resumed.details.rowsDone,
    };
  } finally {
    await second.worker.kill();
  }
}

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'cutover-bench-wf-'));
  let cluster: LocalCluster | undefined;
  let server: DevServer | undefined;
  let connection: Connection | undefined;
  let db: pg.Client | undefined;
  const figures: Record<Part, Record<string, Figure>> = { history: {}, recovery: {}, load: {} };
  let pgVersion = '';
  try {
    // The worker runs the built CLI (dist/), as installed; tsx would add its own memory.
    const build = spawnSync(process.execPath, [join(projectRoot, 'scripts/build.mjs')], {
      stdio: 'inherit',
    });
    if (build.status !== 0) throw new Error('the CLI build failed');
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
    db = new pg.Client({ connectionString: u.toString(), application_name: 'bench' });
    await db.connect();
    pgVersion = (await db.query('SHOW server_version')).rows[0].server_version as string;

    console.log('starting temporal server start-dev …');
    server = await startDevServer({
      dbFile: join(tmp, 'temporal.db'),
      port: await freePort(),
      uiPort: await freePort(),
      headless: true,
    });
    connection = await Connection.connect({ address: server.address });
    const e: Env = {
      db,
      client: new Client({ connection }),
      tmp,
      env: {
        DATABASE_URL: u.toString(),
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_NAMESPACE: 'default',
        CUTOVER_BACKUP_DIR: join(tmp, 'backups'),
        CUTOVER_BACKUP_TARGET: 'local',
      },
    };
    if (!only || only === 'history') {
      part = 'history';
      report(
        `PostgreSQL ${pgVersion}; default blue-green runs of ${SIZES.map(fmt).join(' and ')} rows, default plan settings`,
      );
      figures.history = await historyFigures(e);
    }
    if (!only || only === 'recovery') {
      part = 'recovery';
      report(
        `PostgreSQL ${pgVersion}; recovery on ${fmt(RECOVERY_ROWS)} rows, default plan settings`,
      );
      figures.recovery = await recoveryFigures(e);
    }
    if (!only || only === 'load') {
      part = 'load';
      report(
        `PostgreSQL ${pgVersion}; pgbench TPC-B alone vs during whole runs on ${fmt(LOAD_ROWS)} rows, default plan settings`,
      );
      figures.load = await loadFigures(e);
    }
  } finally {
    await Promise.all([...children].map((c) => c.kill()));
    await connection?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await db?.end().catch(() => {});
    await cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  for (const p of PARTS) {
    if (only && only !== p) continue;
    const files = await recordResults(`workflow-${p}`, {
      postgres: pgVersion,
      rows: { history: SIZES[SIZES.length - 1]!, recovery: RECOVERY_ROWS, load: LOAD_ROWS }[p],
      repeat: p === 'load' ? LOAD_REPEAT : 1,
      quick,
      figures: figures[p],
      log: logs[p],
    });
    console.log(`recorded in ${files.join(' and ')}`);
  }
}

async function historyFigures(e: Env): Promise<Record<string, Figure>> {
  const figures: Record<string, Figure> = {};
  const runs: Awaited<ReturnType<typeof historyRun>>[] = [];
  for (const rows of SIZES) runs.push(await historyRun(e, rows));
  const [small, large] = [runs[0]!, runs[runs.length - 1]!];
  const label = (r: (typeof runs)[number]) =>
    `${fmt(r.rows)} rows, run ${r.secs.toFixed(0)} s, load ${r.load}`;
  const breakdown = (r: (typeof runs)[number]) =>
    Object.entries(r.byType)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  const sizeNote = (wanted: string, r: (typeof runs)[number]) =>
    r.rows === Number(wanted) ? '' : ` (this run: ${fmt(r.rows)} rows, not ${fmt(Number(wanted))})`;
  figures.history_events_100k = {
    value: small.events,
    unit: 'events',
    note: `events in the history of a default blue-green run${sizeNote('100000', small)}; ${label(small)}; ${breakdown(small)}`,
  };
  figures.history_events_2m = {
    value: large.events,
    unit: 'events',
    note: `events in the history of a default blue-green run${sizeNote('2000000', large)}; ${(large.events / small.events).toFixed(2)}× the ${fmt(small.rows)}-row run for ${(large.rows / small.rows).toFixed(0)}× the rows (progress signals are spaced in time); ${label(large)}; ${breakdown(large)}`,
  };
  figures.worker_peak_rss_mb = {
    value: Math.round(large.rss),
    unit: 'MB',
    runs: runs.map((r) => Math.round(r.rss)),
    note: `peak RSS of the cutover worker process during a whole run (VmRSS sampled every 200 ms from /proc), a fresh worker per run: ${runs.map((r) => `${fmt(r.rows)} rows ${r.rss.toFixed(0)} MB (VmHWM ${r.hwm.toFixed(0)} MB, with the start-up's workflow bundling)`).join(', ')}`,
  };
  return figures;
}

async function recoveryFigures(e: Env): Promise<Record<string, Figure>> {
  const figures: Record<string, Figure> = {};
  const rec = await recoveryRun(e, RECOVERY_ROWS);
  figures.recovery_after_worker_kill_s = {
    value: Number(rec.fromPolling.toFixed(1)),
    unit: 's',
    targetMax: 10,
    note: `SIGKILL of the worker during the backfill (${fmt(RECOVERY_ROWS)} rows, checkpoint at ${fmt(rec.checkpoint)}), a new worker started at once: from its start of polling to the retried backfill heartbeating progress past the checkpoint (target < 10 s); SIGKILL → progress ${rec.fromKill.toFixed(1)} s including the new worker's start-up; no row lost (run completed, tables equal the source); load ${load()}`,
  };
  return figures;
}

/** pgbench against the run's database: `args` after the connection options. */
async function pgbench(e: Env, args: string[]): Promise<string> {
  const u = new URL(e.env.DATABASE_URL!);
  const { stdout } = await execFileAsync(
    pgbenchPath,
    [...['-h', u.hostname, '-p', u.port || '5432', '-U', u.username || 'postgres'], ...args, DB],
    { maxBuffer: 1 << 22 },
  );
  return stdout;
}

const historyRows = async (e: Env) =>
  (await e.db.query<{ n: number }>('SELECT count(*)::int AS n FROM pgbench_history')).rows[0]!.n;

/**
 * TPC-B (-c 4) in 5 s rounds until `done()` says stop; returns the failed transactions. Rounds,
 * not one long pgbench, so its own summary (failures included) is read however long the
 * migration takes; the throughput comes from pgbench_history (one row per committed
 * transaction) counted by the caller.
 */
async function tpcbUntil(e: Env, done: () => boolean): Promise<number> {
  let failed = 0;
  while (!done()) {
    const out = await pgbench(e, ['-n', '-c', '4', '-j', '2', '-T', '5']);
    failed += Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  }
  return failed;
}

/** TPC-B committed per second between two counts of pgbench_history. */
async function tpcbRate(e: Env, during: () => Promise<void>) {
  const [n0, t0] = [await historyRows(e), performance.now()];
  await during();
  const [n1, t1] = [await historyRows(e), performance.now()];
  return { tps: (n1 - n0) / ((t1 - t0) / 1000), seconds: (t1 - t0) / 1000 };
}

async function loadRun(e: Env, rows: number, rep: number) {
  const plan = `bench_load_${rep}`;
  await seed(e.db, rows);
  await pgbench(e, ['-i', '-q', '-s', quick ? '3' : '10']);
  const before = await fingerprint(e.db, 'public.orders');
  const { worker } = await startWorker(e);
  try {
    // The seed's and pgbench -i's writes, checkpointed and written back before anything is
    // measured (measured without: "alone" fell from 1,363 to 929 tps over three repetitions).
    await settle(e.db);
    let stop = false;
    let app = tpcbUntil(e, () => stop);
    // Warmed up, then alone for LOAD_ALONE_SECONDS.
    await sleep(5_000);
    const alone = await tpcbRate(e, () => sleep(LOAD_ALONE_SECONDS * 1000));
    stop = true;
    let failed = await app;
    await settle(e.db);
    stop = false;
    app = tpcbUntil(e, () => stop);
    await sleep(5_000);
    const during = await tpcbRate(e, async () => {
      await startRunAsync(e, plan);
      await finish(e, plan, before);
    });
    stop = true;
    failed += await app;
    const ratio = during.tps / alone.tps;
    const status = await handle(e, plan).query(statusQuery);
    report(
      `load ${rep + 1}: TPC-B alone ${alone.tps.toFixed(0)} tps (${alone.seconds.toFixed(0)} s); during the whole run ${during.tps.toFixed(0)} tps (${ratio.toFixed(2)}x, run ${during.seconds.toFixed(0)} s, ${fmt(status.rowsCopied ?? 0)} rows copied, tables equal to the source); failed transactions ${failed}; load ${load()}`,
    );
    return { ratio, failed, alone: alone.tps, during: during.tps, secs: during.seconds };
  } finally {
    await worker.kill();
  }
}

async function loadFigures(e: Env): Promise<Record<string, Figure>> {
  pgbenchPath = (await clientTool('pgbench', (await readServerVersion(e.db)).major)).path;
  const runs: Awaited<ReturnType<typeof loadRun>>[] = [];
  for (let rep = 0; rep < LOAD_REPEAT; rep++) runs.push(await loadRun(e, LOAD_ROWS, rep));
  const failed = runs.reduce((n, r) => n + r.failed, 0);
  // pgbench's invariant on its own tables after everything.
  const inv = (
    await e.db.query<{ ok: boolean }>(`
      SELECT (SELECT sum(delta) FROM pgbench_history) IS NOT DISTINCT FROM (SELECT sum(abalance) FROM pgbench_accounts)
         AND (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
         AND (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(tbalance) FROM pgbench_tellers) AS ok`)
  ).rows[0]!.ok;
  return {
    tpcb_during_migration_vs_alone: {
      value: median(runs.map((r) => r.ratio)),
      unit: 'ratio',
      target: 0.8,
      runs: runs.map((r) => Number(r.ratio.toFixed(3))),
      note: `pgbench TPC-B (-c 4, own tables) during whole default blue-green runs of ${fmt(LOAD_ROWS)} rows (backup, shadow, sync, backfill, index, verify, route 10/50/100 %, swap, cleanup; default load budget, 20 %) ÷ alone; runs ${runs.map((r) => `${r.secs.toFixed(0)} s at ${r.during.toFixed(0)} vs ${r.alone.toFixed(0)} tps`).join(', ')}; failed transactions ${failed}; pgbench invariant ${inv ? 'intact' : 'BROKEN'}; every run's tables equal to the source`,
    },
  };
}

await main();
