/**
 * An expand/contract plan (no source, no target: only steps that change a table in place) run by
 * the blueGreen workflow on the time-skipping server, with the real activities against real
 * PostgreSQL, while application sessions insert, update and delete rows of the table it changes.
 * One run completes; one is aborted at its gate and rolls every step back in reverse. Row for
 * row, the table holds what the application's own writes made it, and nothing of a new table,
 * sync or swap is ever touched.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { parsePlan, resolveRunnablePlan, type ExpandPlan } from '../../src/plan';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import { abortSignal, statusQuery, TASK_QUEUE, type RunStatus } from '../../workflows/definitions';
import type { TestDatabase } from '../support/db';
import {
  createItems,
  createItemsMirror,
  itemsMirrorDifferences,
  startItemLoops,
} from '../expand/writers';
import { createTestWorker, recordingActivities, useWorkflowEnv } from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;

const ROWS = 3000;

useWorkflowEnv('wfexpandonly', (d, e) => {
  db = d;
  env = e;
});
beforeEach(async () => {
  calls = [];
  await createItems(db.pool, ROWS);
  await createItemsMirror(db.pool);
});

/**
 * Application sessions inserting, updating (email too) and deleting items rows while the run
 * goes on, as code deployed for the expand phase does: it writes email_lower whenever the column
 * is there, and leaves it out only while it is not (then the backfill fills it).
 */
function startWriters(clients = 3) {
  const write = async (c: pg.Client, withColumn: string, without: string, args: unknown[]) => {
    try {
      await c.query(withColumn, args);
    } catch (err) {
      if ((err as { code?: string }).code !== '42703') throw err; // undefined column
      await c.query(without, args);
    }
  };
  return startItemLoops(
    db.url,
    clients,
    async (c, { writer, ops }) => {
      const id = 1 + Math.floor(Math.random() * ROWS * 1.2);
      const email = `User${id}-${writer}-${ops}@Example.com`;
      const kind = ops % 10;
      if (kind < 5)
        await write(
          c,
          `UPDATE items SET email = $2, email_lower = lower($2), n = n + 1 WHERE id = $1`,
          `UPDATE items SET email = $2, n = n + 1 WHERE id = $1`,
          [id, email],
        );
      else if (kind < 8)
        await write(
          c,
          `INSERT INTO items (email, n, email_lower) VALUES ($1, 1, lower($1))`,
          `INSERT INTO items (email, n) VALUES ($1, 1)`,
          [email],
        );
      else await c.query(`DELETE FROM items WHERE id = $1`, [id]);
    },
    { app: 'app', pauseMs: 2 },
  );
}

const one = async (sql: string) => (await db.pool.query(sql)).rows[0];

/** items against the mirror of the application's writes, both ways. */
const differences = () => itemsMirrorDifferences(db.pool);

const columnsOfItems = async () =>
  (
    await db.pool.query<{ attname: string }>(
      `SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    )
  ).rows.map((r) => r.attname);

/** The plan file: expand steps only, a monitoring window with a check, then `tail`. */
const planYaml = (tail = '') => `name: items_email_lower
backfill:
  loadBudget: { maxAppSlowdown: 50% }
stages:
  - name: prepare
    steps: [{ kind: backup }]
  - name: expand
    steps:
      - { kind: addColumn, table: public.items, column: email_lower, type: text }
      - kind: backfillColumn
        table: public.items
        column: email_lower
        expression: lower(email)
        batchSize: 500
      - { kind: setNotNull, table: public.items, column: email_lower }
      - { kind: createIndex, table: public.items, index: items_email_lower_idx, columns: [email_lower] }
      - kind: addConstraint
        table: public.items
        constraint: items_email_lower_check
        check: email_lower = lower(email)
  - name: watch
    steps:
      - kind: monitor
        seconds: 120
        checks:
          - kind: sql
            name: unfilled
            query: SELECT count(*) FROM items WHERE email_lower IS DISTINCT FROM lower(email)
            op: "="
            threshold: 0
${tail}`;

async function resolve(text: string): Promise<ExpandPlan> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const plan = await resolveRunnablePlan(parsePlan(text, 'expand.yaml'), client);
    if (plan.kind !== 'expand') throw new Error('expected an expand/contract plan');
    return plan;
  } finally {
    await client.end();
  }
}

async function start(input: BlueGreenInput) {
  return env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: `expand-only-test-${++runNo}`,
    args: [input],
  });
}

const BLUE_GREEN_ACTIVITIES = [
  'preflight',
  'shadowRun',
  'syncRun',
  'syncDrain',
  'backfillRun',
  'verify',
  'swapAttempt',
  'cleanupRun',
];

describe('an expand/contract plan run by the workflow (time-skipping server, real PostgreSQL)', () => {
  it('runs every step under concurrent writers; the table is row for row what they wrote', async () => {
    const plan = await resolve(planYaml());
    expect(plan.tables).toEqual(['public.items']);
    const worker = await createTestWorker(env, recordingActivities(calls));
    const writers = startWriters();
    const { result, status, details } = await worker.runUntil(async () => {
      const handle = await start({ plan });
      // Let the writers work through the steps, then stop them before the window's check ends.
      for (let i = 0; i < 2000; i++) {
        const s = await handle.query(statusQuery);
        if (s.stage === 'watch' || s.state !== 'running') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await writers.stop();
      const result = await handle.result();
      const meta = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
      return { result, status: await handle.query(statusQuery), details: meta.currentDetails };
    });
    expect(writers.errors).toEqual([]);
    expect(writers.ops).toBeGreaterThan(100);
    expect(result.outcome).toBe('completed');
    expect(result.stepsDone).toEqual(plan.stages.flatMap((s) => s.steps.map((st) => st.id)));

    // The status and the Web UI speak of the table the steps change, not of a new table.
    expect(status).toMatchObject({ kind: 'expand', table: 'public.items', state: 'completed' });
    expect(status.lastChecks).toEqual([expect.objectContaining({ name: 'unfilled', ok: true })]);
    expect(status.results?.['expand.backfillColumn']).toMatch(/^\d+ of \d+ rows updated$/);
    expect(details).toContain('**items_email_lower** (public.items): **completed**');
    expect(details).not.toContain('route');

    // Only the expand steps' activities ran: no pre-flight mapping scan, no sync, no swap.
    for (const name of BLUE_GREEN_ACTIVITIES) expect(calls).not.toContain(name);
    expect(calls).toEqual(
      expect.arrayContaining([
        'backupRun',
        'addColumnRun',
        'backfillColumnRun',
        'setNotNullRun',
        'createIndexRun',
        'addConstraintRun',
        'monitorChecks',
      ]),
    );

    // Row for row what the application wrote, and every step did what it says.
    expect(await differences()).toBe(0);
    expect(
      await one(
        `SELECT count(*)::int AS n FROM items WHERE email_lower IS DISTINCT FROM lower(email)`,
      ),
    ).toEqual({ n: 0 });
    expect(
      await one(
        `SELECT attnotnull AS nn FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'email_lower'`,
      ),
    ).toEqual({ nn: true });
    expect(
      await one(
        `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'items_email_lower_idx'::regclass`,
      ),
    ).toEqual({ valid: true });
    expect(
      await one(
        `SELECT convalidated AS v FROM pg_constraint WHERE conname = 'items_email_lower_check'`,
      ),
    ).toEqual({ v: true });
    // Nothing of a blue-green change was created.
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'items\\_%' AND relkind = 'r' AND relname <> 'items_mirror'`,
      ),
    ).toEqual({ n: 0 });
  });

  it('an abort at its gate rolls every step back in reverse, losing no write', async () => {
    const plan = await resolve(
      planYaml(`  - name: contract
    steps: [{ kind: approval, gate: contract }]
`),
    );
    const worker = await createTestWorker(env, recordingActivities(calls));
    const writers = startWriters();
    let atGate: RunStatus | undefined;
    const { result, status } = await worker.runUntil(async () => {
      const handle = await start({ plan });
      for (let i = 0; i < 2000 && !atGate; i++) {
        const s = await handle.query(statusQuery);
        if (s.waitingGates.includes('contract')) atGate = s;
        // The monitoring window's timer is skipped, never a running activity's heartbeat.
        else if (s.windowEndsAt) await env.sleep('1 minute');
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(atGate, 'the run to wait at its gate').toBeDefined();
      // Writers keep going while the undos run: they write email_lower while it is there.
      await handle.signal(abortSignal, { reason: 'release 43 pulled' });
      const result = await handle.result();
      return { result, status: await handle.query(statusQuery) };
    });
    await writers.stop();
    expect(writers.errors).toEqual([]);
    expect(atGate!).toMatchObject({ kind: 'expand', state: 'waiting', table: 'public.items' });
    expect(result.outcome).toBe('rolled-back');
    expect(result.reason).toBe('aborted: release 43 pulled');
    // In reverse: the constraint, the index, NOT NULL, then the column (backup, backfill, gate
    // and monitor have nothing to undo; the column's undo takes the backfilled values along).
    expect(result.undone).toEqual([
      'expand.addConstraint',
      'expand.createIndex',
      'expand.setNotNull',
      'expand.addColumn',
    ]);
    expect(calls.filter((c) => c.endsWith('Undo'))).toEqual([
      'addConstraintUndo',
      'createIndexUndo',
      'setNotNullUndo',
      'addColumnUndo',
    ]);
    expect(status).toMatchObject({ state: 'rolled-back', stage: 'rolled-back' });
    for (const name of BLUE_GREEN_ACTIVITIES) expect(calls).not.toContain(name);

    // The table is as before the run, with every write the application made.
    expect(await columnsOfItems()).toEqual(['id', 'email', 'n']);
    expect(await one(`SELECT to_regclass('items_email_lower_idx') AS r`)).toEqual({ r: null });
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'`,
      ),
    ).toEqual({ n: 0 });
    // This run's ledger is empty again (an earlier, completed run keeps its own rows).
    expect(
      await one(
        `SELECT count(*)::int AS n FROM cutover.expand_changes WHERE run LIKE 'expand-only-test-${runNo}/%'`,
      ),
    ).toEqual({ n: 0 });
    expect(await differences()).toBe(0);
  });
});
