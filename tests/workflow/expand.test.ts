/**
 * A plan with the expand/contract steps and a batch data migration, run end to end by the
 * blue-green workflow on the time-skipping server with the real activities against real
 * PostgreSQL, while application sessions write the changed table: one run completes (the drop
 * waits out its deprecation period on a durable timer and then for a person's confirmation at
 * its gate), one fails at its last step and rolls every step back in reverse, undoing only what
 * it changed. Row for row, the application's rows are what its own writes made them.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  approveSignal,
  statusQuery,
  TASK_QUEUE,
  type RunStatus,
} from '../../workflows/definitions';
import { blueGreen, type BlueGreenInput } from '../../workflows/blue-green';
import type { TestDatabase } from '../support/db';
import {
  createItems,
  createItemsMirror,
  itemsMirrorDifferences,
  startItemLoops,
} from '../expand/writers';
import {
  createTestWorker,
  recordingActivities,
  seedOrders,
  tableExists,
  widenPlan,
  useWorkflowEnv,
} from './support';

let db: TestDatabase;
let env: TestWorkflowEnvironment;
let calls: string[];
let runNo = 0;

useWorkflowEnv('wfexpand', (d, e) => {
  db = d;
  env = e;
});
beforeEach(async () => {
  calls = [];
  await seedOrders(db, 200);
  await createItems(db.pool, 3000);
  await db.pool.query(`
    ALTER TABLE items ADD COLUMN legacy text;
    DROP TABLE IF EXISTS item_copies;
    CREATE TABLE item_copies (id bigint PRIMARY KEY, email text NOT NULL);`);
  await createItemsMirror(db.pool);
});

/**
 * Application sessions updating and deleting items rows while the run goes on (inserts would
 * need the new column's value, which old code does not write: the expand phase is for that).
 */
function startWriters(clients = 2) {
  return startItemLoops(
    db.url,
    clients,
    async (c, { ops }) => {
      const id = 1 + Math.floor(Math.random() * 3000);
      if (ops % 20 === 19) await c.query(`DELETE FROM items WHERE id = $1`, [id]);
      else await c.query(`UPDATE items SET n = n + 1 WHERE id = $1`, [id]);
    },
    { app: 'app', pauseMs: 2 },
  );
}

const one = async (sql: string) => (await db.pool.query(sql)).rows[0];

/** items against the mirror of the application's writes, both ways. */
const differences = () => itemsMirrorDifferences(db.pool);

const EXPAND = `
  - name: expand
    steps:
      - { kind: addColumn, table: public.items, column: email_lower, type: text }
      - kind: backfillColumn
        table: public.items
        column: email_lower
        expression: lower(email)
        batchSize: 500
      - { kind: setNotNull, table: public.items, column: email_lower }
      - kind: createIndex
        table: public.items
        index: items_email_lower_key
        columns: [email_lower]
        unique: true
      - kind: addConstraint
        table: public.items
        constraint: items_email_lower_check
        check: email_lower = lower(email)
      - kind: batchMigrate
        migration: copy_items
        source: { table: public.items }
        target: { table: public.item_copies, columns: { id: id, email: email } }
        batchSize: 500
        concurrency: 2
`;

const PREPARE = `stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }, { kind: backfill }]`;

async function start(input: BlueGreenInput) {
  return env.client.workflow.start(blueGreen, {
    taskQueue: TASK_QUEUE,
    workflowId: `expand-test-${++runNo}`,
    args: [input],
  });
}

describe('expand/contract steps in a plan (time-skipping server, real activities, real PostgreSQL)', () => {
  it('runs every step under writes; the drop waits out its deprecation period, then for its gate', async () => {
    const plan = await widenPlan(
      db,
      `${PREPARE}${EXPAND}
  - name: contract
    steps:
      - { kind: deprecate, table: public.items, column: legacy }
      - { kind: drop, table: public.items, column: legacy, minDeprecatedSeconds: 3600 }
`,
    );
    const worker = await createTestWorker(env, recordingActivities(calls));
    const writers = startWriters();
    let atGate: RunStatus | undefined;
    const result = await worker.runUntil(async () => {
      const handle = await start({ plan, settings: { rollbackWindowSeconds: 0 } });
      for (let i = 0; i < 2000 && !atGate; i++) {
        const s = await handle.query(statusQuery);
        if (s.waitingGates.includes('drop-items-legacy')) atGate = s;
        // Only the drop's hour-long timer is skipped, never a running activity's heartbeat.
        else if (s.step === 'contract.drop' && s.windowEndsAt) await env.sleep('30 minutes');
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(atGate, 'the drop to wait at its gate').toBeDefined();
      await writers.stop();
      // pg_stat_statements is not installed here: nothing is dropped before a person confirms.
      expect(
        await one(
          `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'legacy' AND NOT attisdropped`,
        ),
      ).toEqual({ n: 1 });
      await handle.signal(approveSignal, { gate: 'drop-items-legacy' });
      return handle.result();
    });
    expect(writers.errors).toEqual([]);
    expect(writers.ops).toBeGreaterThan(0);
    expect(result.outcome).toBe('completed');
    expect(result.stepsDone).toEqual(plan.stages.flatMap((s) => s.steps.map((st) => st.id)));
    expect(atGate!.state).toBe('waiting');

    // Every expand step did what it says.
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
        `SELECT indisvalid AS valid, indisunique AS uniq FROM pg_index WHERE indexrelid = 'items_email_lower_key'::regclass`,
      ),
    ).toEqual({ valid: true, uniq: true });
    expect(
      await one(
        `SELECT convalidated AS v FROM pg_constraint WHERE conname = 'items_email_lower_check'`,
      ),
    ).toEqual({ v: true });
    // No temporary NOT NULL check is left behind.
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_constraint WHERE conname LIKE '%_not_null_cutover'`,
      ),
    ).toEqual({ n: 0 });
    // Every item still there is in the copy (rows deleted meanwhile stay in it).
    expect(
      await one(
        `SELECT count(*)::int AS n FROM (SELECT id, email FROM items EXCEPT SELECT id, email FROM item_copies) x`,
      ),
    ).toEqual({ n: 0 });
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'legacy' AND NOT attisdropped`,
      ),
    ).toEqual({ n: 0 });
    expect(await differences()).toBe(0);
    expect(calls).toContain('backfillColumnRun');
    expect(calls.filter((c) => c === 'dropRun')).toHaveLength(1);
  });

  it('a failing last step rolls every step back in reverse, undoing only what the run changed', async () => {
    const plan = await widenPlan(
      db,
      `${PREPARE}
  - name: pre
    steps:
      # email is there already: this step changes nothing, and its undo must not drop it.
      - { kind: addColumn, name: email-again, table: public.items, column: email, type: text }${EXPAND}
  - name: deploy
    steps:
      - { kind: hook, name: deploy-app, run: { command: "exit 3" } }
`,
    );
    const worker = await createTestWorker(env, recordingActivities(calls));
    const writers = startWriters();
    let status: RunStatus | undefined;
    const failure = await worker.runUntil(async () => {
      const handle = await start({ plan });
      const err = await handle.result().then(
        () => null,
        (e: unknown) => e as Error,
      );
      status = await handle.query(statusQuery);
      return err;
    });
    await writers.stop();
    expect(writers.errors).toEqual([]);
    expect(failure).not.toBeNull();
    expect(status!.state).toBe('failed');
    expect(status!.error).toMatch(/exit|3/);
    expect(calls.filter((c) => c.endsWith('Undo'))).toEqual([
      'batchMigrateUndo',
      'addConstraintUndo',
      'createIndexUndo',
      'setNotNullUndo',
      'addColumnUndo', // email_lower: dropped
      'addColumnUndo', // email: there before the run, kept
      'backfillUndo',
      'syncUndo',
      'shadowUndo',
    ]);
    const columns = await db.pool.query<{ attname: string }>(
      `SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    expect(columns.rows.map((r) => r.attname)).toEqual(['id', 'email', 'n', 'legacy']);
    expect(await one(`SELECT to_regclass('items_email_lower_key') AS r`)).toEqual({ r: null });
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = 'items'::regclass AND contype = 'c'`,
      ),
    ).toEqual({ n: 0 });
    expect(await tableExists(db, 'public.orders_v2')).toBe(false);
    expect(
      await one(
        `SELECT count(*)::int AS n FROM cutover.batch_checkpoints WHERE migration = 'copy_items'`,
      ),
    ).toEqual({ n: 0 });
    expect(await one(`SELECT count(*)::int AS n FROM cutover.expand_changes`)).toEqual({ n: 0 });
    expect(await differences()).toBe(0);
  });

  it('a long transaction holding the table makes a DDL step wait, visibly naming it, then proceed', async () => {
    const plan = await widenPlan(
      db,
      `${PREPARE}
  - name: expand
    steps:
      - { kind: addColumn, table: public.items, column: email_lower, type: text }
`,
    );
    const holder = new pg.Client({ connectionString: db.url, application_name: 'long-report' });
    await holder.connect();
    const pid = (await holder.query(`SELECT pg_backend_pid() AS p`)).rows[0].p as number;
    await holder.query(`BEGIN`);
    await holder.query(`SELECT count(*) FROM items`);
    const worker = await createTestWorker(env, recordingActivities(calls));
    let waiting: string | null | undefined;
    const result = await worker.runUntil(async () => {
      const handle = await start({ plan });
      try {
        for (let i = 0; i < 1200 && !waiting; i++) {
          const s = await handle.query(statusQuery);
          if (s.progress?.activity === 'ddl') waiting = s.progress.throttled;
          else await new Promise((r) => setTimeout(r, 50));
        }
        // Still waiting: the column is not there while the transaction holds the table.
        expect(
          await one(
            `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'email_lower'`,
          ),
        ).toEqual({ n: 0 });
      } finally {
        await holder.query('COMMIT');
        await holder.end();
      }
      return handle.result();
    });
    expect(waiting).toMatch(
      new RegExp(
        `^waiting for a lock on public\\.items \\(attempt \\d+, next in \\d+ ms\\): pid ${pid} \\(transaction \\d+s old, idle in transaction\\): SELECT count\\(\\*\\) FROM items`,
      ),
    );
    expect(result.outcome).toBe('completed');
    expect(
      await one(
        `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'email_lower'`,
      ),
    ).toEqual({ n: 1 });
  });
});
