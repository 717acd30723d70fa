import { rmSync } from 'node:fs';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  approveSignal,
  deployStatusQuery,
  leaveSignal,
  restoreSignal,
  TASK_QUEUE,
  type DeployStatus,
} from '../../workflows/definitions';
import { deployRollback } from '../../workflows/deploy-rollback';
import { deployMigrations, type DeployInput } from '../../workflows/deploy-migrations';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { scratchMigrations } from '../support/migrations-dir';
import { timeSkippingEnv } from '../support/temporal';
import { configureActivityEnv, createTestWorker, recordingActivities } from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let runNo = 0;
const dirs: string[] = [];

const table = (v: string, name: string) => ({
  [`${v}_${name}.up.sql`]: `CREATE TABLE ${name} (id int PRIMARY KEY, v int);`,
  [`${v}_${name}.down.sql`]: `DROP TABLE ${name};`,
});

beforeAll(async () => {
  db = await createTestDatabase('deploy');
  configureActivityEnv(db);
  env = await timeSkippingEnv();
});
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await env?.teardown();
  await db?.drop();
});
beforeEach(async () => {
  await db.pool.query(
    `DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP SCHEMA IF EXISTS cutover CASCADE`,
  );
});

async function deploy(input: Omit<DeployInput, 'connection'>, approve = false) {
  const worker = await createTestWorker(env, recordingActivities([]));
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(deployMigrations, {
      taskQueue: TASK_QUEUE,
      workflowId: `deploy-test-${++runNo}`,
      args: [{ connection: 'default', ...input }],
    });
    if (approve) await handle.signal(approveSignal, { gate: 'apply' });
    return handle.result();
  });
}

async function versions(): Promise<number[]> {
  const present = await db.pool.query(
    `SELECT to_regclass('cutover.schema_migrations') IS NOT NULL AS p`,
  );
  if (!present.rows[0].p) return [];
  return (await db.pool.query(`SELECT version FROM cutover.schema_migrations ORDER BY 1`)).rows.map(
    (r) => r.version as number,
  );
}

function dir(files: Record<string, string>): string {
  const d = scratchMigrations(files);
  dirs.push(d);
  return d;
}

describe('deploy workflow for versioned migrations (time-skipping server, real PostgreSQL)', () => {
  it('dry-runs, waits for approval, applies up to the target', async () => {
    const d = dir({ ...table('0001', 'a'), ...table('0002', 'b'), ...table('0003', 'c') });
    const result = await deploy({ dir: d, to: 2, requireApproval: true, backupTables: [] }, true);
    expect(result).toEqual({ outcome: 'applied', from: 0, applied: ['0001_a', '0002_b'] });
    expect(await versions()).toEqual([1, 2]);
    expect((await deploy({ dir: d, to: 2 })).outcome).toBe('up-to-date');
  });

  it('runs the safety lint first: an unsafe migration fails the deploy before anything is applied', async () => {
    const d = dir({
      ...table('0001', 'a'),
      '0002_idx.up.sql': 'CREATE INDEX a_v_idx ON a (v);',
      '0002_idx.down.sql': '-- cutover:no-transaction\nDROP INDEX CONCURRENTLY a_v_idx;',
    });
    await deploy({ dir: d, to: 1 });
    const err = await deploy({ dir: d }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as Error).cause)).toMatch(
      /refused before any change: refusing to migrate: the safety lint found 1 error[\s\S]*create-index-not-concurrently/,
    );
    expect(await versions()).toEqual([1]);
    expect((await deploy({ dir: d, allowUnsafe: true })).outcome).toBe('applied');
    expect(await versions()).toEqual([1, 2]);
  });

  it('a failed post-check rolls back what this run applied, with the down scripts', async () => {
    const d = dir({ ...table('0001', 'a'), ...table('0002', 'b'), ...table('0003', 'c') });
    await deploy({ dir: d, to: 1 });
    const result = await deploy({
      dir: d,
      postChecks: [{ kind: 'sql', name: 'b is empty', query: 'SELECT 1', op: '=', threshold: 0 }],
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toMatch(/post-check failed: b is empty/);
    expect(result.applied).toEqual(['0002_b', '0003_c']);
    expect(await versions()).toEqual([1]);
    expect((await db.pool.query(`SELECT to_regclass('public.c') AS t`)).rows[0].t).toBeNull();
  });

  it('bad SQL stops the deploy at the dry run, before anything changes', async () => {
    const d = dir({
      ...table('0001', 'a'),
      '0002_bad.up.sql': 'INSERT INTO a SELECT no_such_column FROM a;',
      '0002_bad.down.sql': 'SELECT 1;',
    });
    const err = await deploy({ dir: d }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as Error).cause)).toMatch(
      /refused before any change: 0002_bad\.up\.sql:1: ERROR: column "no_such_column" does not exist/,
    );
    expect(await versions()).toEqual([]);
  });

  it('a migration failing at apply time fails the deploy and rolls back to the starting version', async () => {
    // A no-transaction script is not executed by the dry run, so it can only fail for real.
    const d = dir({
      ...table('0001', 'a'),
      ...table('0002', 'b'),
      '0003_idx.up.sql':
        '-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY missing_idx ON no_such_table (v);',
      '0003_idx.down.sql':
        '-- cutover:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS missing_idx;',
    });
    const err = await deploy({ dir: d }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as Error).cause)).toMatch(
      /apply failed: 0003_idx\.up\.sql:2: ERROR: relation "no_such_table" does not exist; rolled back to version 0/,
    );
    expect(await versions()).toEqual([]);
    expect((await db.pool.query(`SELECT to_regclass('public.a') AS t`)).rows[0].t).toBeNull();
  });
});

describe('the way back when down scripts cannot run (time-skipping server, real PostgreSQL)', () => {
  // 0002 multiplies every v by 10 and its down script fails, so the data can only come back
  // from the backup the deploy took before it changed anything.
  const files = () => ({
    '0001_a.up.sql': `CREATE TABLE a (id int PRIMARY KEY, v int);`,
    '0001_a.down.sql': `DROP TABLE a;`,
    '0002_scale.up.sql': `UPDATE a SET v = v * 10 WHERE id > 0;`,
    '0002_scale.down.sql': `UPDATE a SET v = no_such_column WHERE id > 0;`,
  });
  const failingCheck = [
    {
      kind: 'sql' as const,
      name: 'always fails',
      query: 'SELECT 1',
      op: '=' as const,
      threshold: 0,
    },
  ];

  async function seeded(): Promise<string> {
    const d = dir(files());
    await deploy({ dir: d, to: 1 });
    await db.pool.query(`INSERT INTO a SELECT g, g FROM generate_series(1, 50) g`);
    return d;
  }

  async function untilState(handle: WorkflowHandle, state: string): Promise<DeployStatus> {
    for (let i = 0; i < 300; i++) {
      const s = await handle.query(deployStatusQuery);
      if (s.state === state) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `run never reached ${state}: ${JSON.stringify(await handle.query(deployStatusQuery))}`,
    );
  }

  const sumV = async (t = 'a') =>
    Number((await db.pool.query(`SELECT sum(v) AS s FROM ${t}`)).rows[0].s);

  it('a failing down script waits for a decision; restore brings the backed-up rows back and keeps the later state aside', async () => {
    const d = await seeded();
    const worker = await createTestWorker(env, recordingActivities([]));
    const result = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(deployMigrations, {
        taskQueue: TASK_QUEUE,
        workflowId: `deploy-test-${++runNo}`,
        args: [
          { connection: 'default', dir: d, backupTables: ['public.a'], postChecks: failingCheck },
        ],
      });
      const waiting = await untilState(handle, 'waiting-for-restore');
      expect(waiting.problem).toMatch(
        /down scripts could not take the database back to version 1: 0002_scale\.down\.sql:1: ERROR: column "no_such_column" does not exist/,
      );
      expect(waiting.backupId).toMatch(/deploy-from-1/);
      expect(waiting.next).toContain(`cutover deploy leave ${handle.workflowId}`);
      // Nothing has been touched while it waits: the rows are still scaled.
      expect(await sumV()).toBe(12750);
      await handle.signal(restoreSignal, { sideSchema: 'before_restore' });
      return handle.result();
    });
    expect(result.outcome).toBe('restored');
    expect(result.reason).toMatch(/post-check failed: always fails/);
    expect(await sumV()).toBe(1275);
    expect(await sumV('before_restore.a')).toBe(12750);
  });

  it('leave finishes the run as failed and changes nothing', async () => {
    const d = await seeded();
    const worker = await createTestWorker(env, recordingActivities([]));
    const err = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(deployMigrations, {
        taskQueue: TASK_QUEUE,
        workflowId: `deploy-test-${++runNo}`,
        args: [
          { connection: 'default', dir: d, backupTables: ['public.a'], postChecks: failingCheck },
        ],
      });
      await untilState(handle, 'waiting-for-restore');
      await handle.signal(leaveSignal);
      return handle.result().catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as Error).cause)).toMatch(
      /post-check failed: always fails: 1 is not = 0; down scripts failed; database left as it is/,
    );
    expect(await sumV()).toBe(12750);
    expect(await versions()).toEqual([1, 2]);
  });

  it('without a backup the run says so and fails at once, leaving the database as it is', async () => {
    const d = await seeded();
    const err = await deploy({ dir: d, postChecks: failingCheck }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as Error).cause)).toMatch(/database left as it is/);
    expect(await sumV()).toBe(12750);
  });

  it('deployRollback takes the database back to a version with the down scripts, and refuses to go forward', async () => {
    const d = dir({ ...table('0001', 'a'), ...table('0002', 'b'), ...table('0003', 'c') });
    await deploy({ dir: d });
    const worker = await createTestWorker(env, recordingActivities([]));
    const [result, refused] = await worker.runUntil(async () => {
      const run = (to: number) =>
        env.client.workflow.execute(deployRollback, {
          taskQueue: TASK_QUEUE,
          workflowId: `rollback-test-${++runNo}`,
          args: [{ connection: 'default', dir: d, to, backupTables: ['public.a'] }],
        });
      const r = await run(1);
      return [r, await run(2).catch((e: unknown) => e)] as const;
    });
    expect(result).toMatchObject({ outcome: 'rolled-back', from: 3, to: 1, failedChecks: [] });
    expect(result.backupId).toMatch(/rollback-from-3/);
    expect(await versions()).toEqual([1]);
    expect((await db.pool.query(`SELECT to_regclass('public.b') AS t`)).rows[0].t).toBeNull();
    expect(String((refused as Error).cause)).toMatch(
      /the database is at version 1, below the rollback target 2/,
    );
  });
});
