/**
 * End-to-end harness: a real `temporal server start-dev` (SQLite file, free ports), workers and
 * other programs as child processes, the CLI run as a child process too. Everything started
 * here is tracked and killed by `stop()`, so a failing test leaks no process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { freePort } from '../../src/db/local-cluster';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { blueGreen } from '../../workflows/blue-green';
import { statusQuery, type RunStatus } from '../../workflows/definitions';
import { cliPath, runCli, type CliResult } from '../support/cli';
import { createTestDatabase, type TestDatabase } from '../support/db';

export { routePercent, tableExists, userTriggers } from '../support/db-state';
export { seedOrders, widenPlanYaml } from '../support/orders';

export const fixturePath = (name: string) =>
  fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Polls `probe` until it returns a value other than undefined/false, or fails after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  ms = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ChildHandle {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Kills the process (SIGKILL unless told) and waits for it to be gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function track(proc: ChildProcess, children: Set<ChildHandle>): ChildHandle {
  let out = '';
  const collect = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  const exited = new Promise<number | null>((res) => {
    if (proc.exitCode !== null || proc.signalCode !== null) res(proc.exitCode);
    else proc.once('exit', (code) => res(code));
  });
  const handle: ChildHandle = {
    proc,
    output: () => out,
    exited,
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
      children.delete(handle);
    },
  };
  children.add(handle);
  void exited.then(() => children.delete(handle));
  return handle;
}

export interface E2E {
  db: TestDatabase;
  tmp: string;
  server: DevServer;
  /** Environment for the CLI and workers: the test database, the dev server, a backup dir. */
  env: Record<string, string>;
  client: Client;
  cli(args: string[], extraEnv?: Record<string, string>): Promise<CliResult>;
  /** `node bin/cutover.js worker [args]` as a child process; resolves once it polls. */
  startWorker(args?: string[]): Promise<ChildHandle>;
  /** Any other program (e.g. a load generator), tracked for cleanup. */
  spawnChild(args: string[], extraEnv?: Record<string, string>): ChildHandle;
  /** Stops the dev server; the SQLite file keeps its state. */
  stopServer(): Promise<void>;
  /** Starts it again on the same port with the same SQLite file. */
  restartServer(): Promise<void>;
  writePlan(name: string, yaml: string): string;
  status(plan: string): Promise<RunStatus>;
  handle(plan: string): ReturnType<Client['workflow']['getHandle']>;
  /** Kills every child and the server, closes the client, drops the database. */
  stop(): Promise<void>;
}

/** `ui: true` serves the dev server's Web UI (on its own free port) for browser tests. */
export async function startE2E(prefix: string, opts: { ui?: boolean } = {}): Promise<E2E> {
  const children = new Set<ChildHandle>();
  const tmp = mkdtempSync(join(tmpdir(), `cutover-e2e-${prefix}-`));
  const dbFile = join(tmp, 'temporal.db');
  const [port, uiPort] = [await freePort(), await freePort()];
  const db = await createTestDatabase(prefix);
  let server: DevServer | undefined;
  let connection: Connection | undefined;
  const stopAll = async () => {
    await Promise.all([...children].map((c) => c.kill('SIGKILL')));
    await connection?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await db.drop().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    server = await startDevServer({ dbFile, port, uiPort, headless: !opts.ui });
    connection = await Connection.connect({ address: server.address });
  } catch (err) {
    await stopAll();
    throw err;
  }
  const client = new Client({ connection });
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    CUTOVER_BACKUP_DIR: join(tmp, 'backups'),
    CUTOVER_BACKUP_TARGET: 'local',
  };
  const e2e: E2E = {
    db,
    tmp,
    server,
    env,
    client,
    cli: (args, extraEnv = {}) => runCli(args, { ...env, ...extraEnv }),
    spawnChild(args, extraEnv = {}) {
      const proc = spawn(process.execPath, args, {
        env: { ...process.env, ...env, ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return track(proc, children);
    },
    async startWorker(args = []) {
      const worker = e2e.spawnChild([cliPath, 'worker', ...args]);
      await waitFor(
        'the worker to poll',
        async () => {
          if (worker.proc.exitCode !== null)
            throw new Error(`worker exited ${worker.proc.exitCode}: ${worker.output()}`);
          return worker.output().includes('worker polling');
        },
        // Bundling the workflows on a loaded machine can take minutes; this is not a speed test.
        300_000,
      ).catch(async (err: Error) => {
        await worker.kill();
        throw new Error(`${err.message}\nworker output:\n${worker.output()}`);
      });
      return worker;
    },
    async stopServer() {
      await server!.stop();
    },
    async restartServer() {
      server = await startDevServer({ dbFile, port, uiPort, headless: !opts.ui });
      e2e.server = server;
    },
    writePlan(name, yaml) {
      const file = join(tmp, `${name}.yaml`);
      writeFileSync(file, yaml);
      return file;
    },
    status: (plan) => e2e.handle(plan).query(statusQuery),
    handle: (plan) => client.workflow.getHandle<typeof blueGreen>(`cutover-${plan}`),
    stop: stopAll,
  };
  return e2e;
}

/** True when the plan has no workflow at all on the server. */
export async function noWorkflow(e2e: E2E, plan: string): Promise<boolean> {
  try {
    await e2e.handle(plan).describe();
    return false;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return true;
    throw err;
  }
}

/** Rows in one table and not the other, both ways (0 = same rows). */
export async function differingRows(db: TestDatabase, a: string, b: string): Promise<number> {
  const r = await db.pool.query(
    `SELECT count(*)::int AS n FROM ((SELECT * FROM ${a} EXCEPT SELECT * FROM ${b})
       UNION ALL (SELECT * FROM ${b} EXCEPT SELECT * FROM ${a})) d`,
  );
  return r.rows[0].n as number;
}

/** An order-independent fingerprint of a table's rows, comparable across int/bigint keys. */
export async function tableFingerprint(
  db: TestDatabase,
  table: string,
): Promise<{ rows: number; md5: string }> {
  const r = await db.pool.query(
    `SELECT count(*)::int AS rows, md5(string_agg(t::text, '|' ORDER BY t.id)) AS md5 FROM ${table} t`,
  );
  return r.rows[0] as { rows: number; md5: string };
}

/** Heartbeat details, attempt and times of the plan's running backfill activity, if any. */
export async function backfillActivity(e2e: E2E, plan: string) {
  const desc = await e2e.handle(plan).describe();
  const a = (desc.raw.pendingActivities ?? []).find((p) => p.activityType?.name === 'backfillRun');
  if (!a) return undefined;
  const { defaultPayloadConverter } = await import('@temporalio/common');
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
          rowsInserted: number;
          batches: number;
          lastKey: unknown;
          mode?: 'key' | 'ctid';
          pages?: { next: number; end: number } | null;
          updatedAt: string;
        })
      : undefined,
  };
}
