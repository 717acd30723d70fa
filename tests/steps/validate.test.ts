import type { PoolClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPlan, parsePlan, resolvePlan, type ResolvedPlan } from '../../src/plan';
import { catalogSnapshot } from '../../src/plan/catalog';
import { executeTargetDdl } from '../../src/plan/ddl';
import type { PlanProblem } from '../../src/plan/load';
import { monitorCheckSchema, type PlanFile } from '../../src/plan/schema';
import { validateStep } from '../../src/steps/io';
import { stepKinds, type ResolvedStep, type StepKind } from '../../src/steps/schemas';
import type { ValidateContext } from '../../src/steps/validate-context';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { seedOrders, widenPlanYaml } from '../support/orders';

/**
 * Every step kind's own validate refuses its bad input, and changes nothing while doing so. Each
 * case runs the validate the way the plan check does: inside a transaction in which the new table
 * was created from the plan's DDL, rolled back afterwards; the catalog is compared before and
 * after the validate inside that transaction, and the database's catalog before and after all.
 */
let db: TestDatabase;
let plan: PlanFile;
let resolved: ResolvedPlan;

beforeAll(async () => {
  db = await createTestDatabase('steps');
  process.env.DATABASE_URL = db.url;
  await seedOrders(db, 50);
  // The drop case's column, deprecated a day ago (its bad input takes the mark away).
  await db.pool.query(
    `COMMENT ON COLUMN orders.created_at IS 'cutover:deprecated-at=${new Date(Date.now() - 86_400_000).toISOString()}'`,
  );
  plan = parsePlan(widenPlanYaml('validate_steps', ''), 'validate.yaml');
  const client = await db.pool.connect();
  try {
    resolved = await resolvePlan(plan, client);
  } finally {
    client.release();
  }
});
afterAll(async () => {
  await db?.drop();
});

interface Case {
  step: ResolvedStep;
  /** Makes the input bad (the plan's or the environment's part the step reads). */
  bad: (ctx: ValidateContext, client: PoolClient) => Promise<void> | void;
  /** What the problem says. */
  expect: RegExp;
}

async function run(
  step: ResolvedStep,
  edit?: (ctx: ValidateContext, client: PoolClient) => Promise<void> | void,
): Promise<PlanProblem[]> {
  const problems: PlanProblem[] = [];
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await executeTargetDdl(client, resolved.change.target.schema, resolved.targetDdl);
    const ctx: ValidateContext = {
      client,
      plan: structuredClone(plan),
      change: structuredClone(resolved.change),
      readsOnly: false,
      path: 'stages[0].steps[0]',
      env: { ...process.env },
      problem: (path, message) => problems.push({ path, message }),
    };
    await edit?.(ctx, client);
    const before = await catalogSnapshot(client);
    await validateStep(step, ctx);
    expect(await catalogSnapshot(client)).toBe(before);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
  return problems;
}

const sqlCheck = (query: string) =>
  monitorCheckSchema.parse({ kind: 'sql', name: 'late', query, op: '=', threshold: 0 });

const cases: Partial<Record<StepKind, Case>> = {
  backup: {
    step: { kind: 'backup', id: 'p.backup' },
    bad: (ctx) => {
      ctx.env = { ...ctx.env, CUTOVER_BACKUP_TARGET: 's3', CUTOVER_BACKUP_S3_BUCKET: '' };
    },
    expect: /backups cannot be stored: .*CUTOVER_BACKUP_S3_BUCKET/,
  },
  shadow: {
    step: { kind: 'shadow', id: 'p.shadow' },
    bad: (ctx) => {
      ctx.change!.target = { schema: 'public', table: 'not_created_by_the_ddl' };
    },
    expect: /the DDL did not create the new table/,
  },
  sync: {
    step: { kind: 'sync', id: 'p.sync' },
    bad: (ctx) => {
      ctx.change!.down = ctx.change!.down!.map((m) =>
        m.column === 'customer' ? { ...m, expression: 'no_such_column' } : m,
      );
    },
    expect: /reverse mapping does not compile: .*no_such_column/,
  },
  backfill: {
    step: { kind: 'backfill', id: 'p.backfill' },
    bad: (ctx) => {
      ctx.change!.targetKey = ['order_no'];
    },
    expect: /key column "order_no" is missing from public.orders_v2/,
  },
  verify: {
    step: { kind: 'verify', id: 'p.verify' },
    bad: (ctx) => {
      ctx.change!.up.push({ column: 'ghost', expression: '1' });
    },
    expect: /no column "ghost" to verify/,
  },
  sqlcheck: {
    step: {
      kind: 'sqlcheck',
      id: 'p.sqlcheck',
      checks: [{ name: 'n', sql: 'SELECT count(*) FROM orders_v2', expect: 0 }],
    },
    bad: () => {},
    expect: /does not compile/,
  },
  route: {
    step: { kind: 'route', id: 'p.route', percent: 10 },
    bad: (ctx) => {
      ctx.plan.run.router = {
        kind: 'webhook',
        url: 'http://127.0.0.1:9/weights',
        timeoutMs: 1000,
        headersFromEnv: { Authorization: 'CUTOVER_TEST_NO_SUCH_LB_TOKEN' },
      };
    },
    expect: /CUTOVER_TEST_NO_SUCH_LB_TOKEN, which is not set/,
  },
  monitor: {
    step: { kind: 'monitor', id: 'p.monitor', seconds: 60, checks: [sqlCheck('SELECT 0')] },
    bad: () => {},
    expect: /does not compile/,
  },
  hook: {
    step: { kind: 'hook', id: 'p.hook', hook: { kind: 'command', command: 'true' } },
    bad: () => {},
    expect: /CUTOVER_TEST_NO_SUCH_DEPLOY_TOKEN, which is not set/,
  },
  addColumn: {
    step: {
      kind: 'addColumn',
      id: 'p.addColumn',
      table: 'public.orders',
      column: 'note',
      type: 'text',
    },
    bad: () => {},
    expect:
      /default of public\.orders\.note \(random\(\)::text\) is volatile: it would rewrite every row/,
  },
  backfillColumn: {
    step: {
      kind: 'backfillColumn',
      id: 'p.backfillColumn',
      table: 'public.orders',
      column: 'customer',
      expression: "coalesce(customer, 'unknown')",
      batchSize: 100,
      pauseMs: 0,
    },
    bad: () => {},
    expect:
      /public\.orders\.customer holds other values in rows with key 1, 2, 3, 4, 5, …, which the backfill would overwrite/,
  },
  setNotNull: {
    step: { kind: 'setNotNull', id: 'p.setNotNull', table: 'public.orders', column: 'customer' },
    bad: async (_ctx, client) => {
      await client.query(`ALTER TABLE orders ALTER COLUMN customer DROP NOT NULL`);
      await client.query(`UPDATE orders SET customer = NULL WHERE id IN (7, 9)`);
    },
    expect: /public\.orders\.customer would be NULL in rows with key 7, 9: fill them first/,
  },
  createIndex: {
    step: {
      kind: 'createIndex',
      id: 'p.createIndex',
      table: 'public.orders',
      index: 'orders_amount_key',
      columns: ['amount_cents'],
      unique: true,
    },
    bad: async (_ctx, client) => {
      await client.query(`UPDATE orders SET amount_cents = 10 WHERE id IN (2, 3)`);
    },
    expect: /duplicates under the new unique index orders_amount_key: \(10\) \(3 rows\)/,
  },
  addConstraint: {
    step: {
      kind: 'addConstraint',
      id: 'p.addConstraint',
      table: 'public.orders',
      constraint: 'orders_amount_cap',
      check: 'amount_cents < 100000',
    },
    bad: async (_ctx, client) => {
      await client.query(`UPDATE orders SET amount_cents = 200000 WHERE id = 4`);
    },
    expect: /rows that orders_amount_cap would reject, with key 4: fix them first/,
  },
  batchMigrate: {
    step: {
      kind: 'batchMigrate',
      id: 'p.batchMigrate',
      migration: 'copy_orders',
      source: { table: 'public.orders' },
      target: { table: 'public.orders_v2', columns: { id: 'id', customer: 'customer' } },
      batchSize: 100,
      concurrency: 1,
      itemAttempts: 3,
      dryRun: false,
    },
    bad: () => {},
    expect: /batch migration copy_orders: .*no_such_column/,
  },
  deprecate: {
    step: { kind: 'deprecate', id: 'p.deprecate', table: 'public.orders', column: 'created_at' },
    bad: () => {},
    expect: /public\.orders has no column ghost/,
  },
  drop: {
    step: {
      kind: 'drop',
      id: 'p.drop',
      table: 'public.orders',
      column: 'created_at',
      minDeprecatedSeconds: 0,
      gate: 'drop-orders-created_at',
      auto: false,
    },
    bad: async (_ctx, client) => {
      await client.query(`COMMENT ON COLUMN orders.created_at IS NULL`);
    },
    expect: /column public\.orders\.created_at was never deprecated: add a deprecate step/,
  },
  swap: {
    step: { kind: 'swap', id: 'p.swap', lockTimeoutMs: 1000, maxWaitSeconds: 600 },
    bad: async (_ctx, client) => {
      await client.query(
        'CREATE MATERIALIZED VIEW orders_by_customer AS SELECT customer, count(*) FROM orders GROUP BY 1',
      );
    },
    expect: /materialized view public\.orders_by_customer: .*drop it before the run/,
  },
  rename: {
    step: { kind: 'rename', id: 'p.rename', lockTimeoutMs: 1000, maxWaitSeconds: 600 },
    // A view over the old table would stay with the archive (a swap carries it, a rename not).
    bad: async (_ctx, client) => {
      await client.query('CREATE VIEW big_orders AS SELECT id FROM orders WHERE id > 10');
    },
    expect: /view public\.big_orders: .*use a swap \(finish: swap\)/,
  },
};

// Bad inputs that live in the step itself rather than around it.
const badSteps: Partial<Record<StepKind, ResolvedStep>> = {
  addColumn: {
    kind: 'addColumn',
    id: 'p.addColumn',
    table: 'public.orders',
    column: 'note',
    type: 'text',
    default: 'random()::text',
  },
  backfillColumn: {
    kind: 'backfillColumn',
    id: 'p.backfillColumn',
    table: 'public.orders',
    column: 'customer',
    expression: 'upper(customer)',
    batchSize: 100,
    pauseMs: 0,
  },
  batchMigrate: {
    kind: 'batchMigrate',
    id: 'p.batchMigrate',
    migration: 'copy_orders',
    source: { table: 'public.orders' },
    target: { table: 'public.orders_v2', columns: { id: 'id', customer: 'no_such_column' } },
    batchSize: 100,
    concurrency: 1,
    itemAttempts: 3,
    dryRun: false,
  },
  deprecate: { kind: 'deprecate', id: 'p.deprecate', table: 'public.orders', column: 'ghost' },
  sqlcheck: {
    kind: 'sqlcheck',
    id: 'p.sqlcheck',
    checks: [{ name: 'n', sql: 'SELECT no_such_column FROM orders_v2', expect: 0 }],
  },
  monitor: {
    kind: 'monitor',
    id: 'p.monitor',
    seconds: 60,
    checks: [sqlCheck('SELECT count(no_such_column) FROM orders_v2')],
  },
  hook: {
    kind: 'hook',
    id: 'p.hook',
    hook: {
      kind: 'http',
      url: 'http://127.0.0.1:9/deploy',
      headersFromEnv: { Authorization: 'CUTOVER_TEST_NO_SUCH_DEPLOY_TOKEN' },
    },
  },
};

/** Kinds whose validate has nothing of its own to refuse (said in their index.ts). */
const nothingToValidate: StepKind[] = ['index', 'approval', 'cleanup'];

describe("each step kind's validate", () => {
  it('has a bad-input case here, or is declared to have nothing to validate', () => {
    expect([...Object.keys(cases), ...nothingToValidate].sort()).toEqual([...stepKinds].sort());
  });

  for (const [kind, c] of Object.entries(cases) as Array<[StepKind, Case]>) {
    it(`${kind}: accepts the good plan and refuses its bad input without changing anything`, async () => {
      const before = await catalogSnapshot(db.pool as never);
      expect(await run(c.step)).toEqual([]);
      const problems = await run(badSteps[kind] ?? c.step, c.bad);
      expect(problems.length).toBeGreaterThan(0);
      expect(problems.map((p) => p.message).join('\n')).toMatch(c.expect);
      expect(await catalogSnapshot(db.pool as never)).toBe(before);
    });
  }

  it('plan check runs them: a hook naming a missing secret fails the check, nothing changes', async () => {
    const withHook = parsePlan(
      widenPlanYaml(
        'validate_hook',
        `stages:
  - name: prepare
    steps: [{ kind: shadow }, { kind: sync }, { kind: backfill }]
  - name: deploy
    steps:
      - kind: hook
        run:
          url: http://127.0.0.1:9/deploy
          headersFromEnv: { Authorization: CUTOVER_TEST_NO_SUCH_DEPLOY_TOKEN }
`,
      ),
      'hook.yaml',
    );
    const client = await db.pool.connect();
    try {
      const before = await catalogSnapshot(client);
      const report = await checkPlan(withHook, client);
      expect(report.ok).toBe(false);
      expect(report.problems).toEqual([
        {
          path: 'stages[1].steps[0].run.headersFromEnv',
          message: expect.stringMatching(/CUTOVER_TEST_NO_SUCH_DEPLOY_TOKEN, which is not set/),
        },
      ]);
      expect(await catalogSnapshot(client)).toBe(before);
      // With the secret set where the check runs (as on the worker), the same plan passes.
      const ok = await checkPlan(withHook, client, {
        env: { ...process.env, CUTOVER_TEST_NO_SUCH_DEPLOY_TOKEN: 'x' },
      });
      expect(ok.problems).toEqual([]);
    } finally {
      client.release();
    }
  });
});
