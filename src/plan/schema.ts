/**
 * The plan file schema (YAML → zod). A plan describes ONE blue-green table change. Field by field,
 * with defaults (plans/*.yaml are complete, tested examples):
 *
 *   name: widen_orders_id            # safe identifier; names triggers, functions, routes, workflows
 *   connection: default              # named connection (env), never a URL
 *   source: public.orders            # schema.table (schema defaults to public)
 *   key: [id]                        # optional: default = the primary key; else the columns of a
 *                                    # unique index (all NOT NULL)
 *   target:
 *     table: orders_v2               # schema defaults to the source's
 *     ddl: CREATE TABLE orders_v2 (…); CREATE INDEX … ON orders_v2 …
 *     # or
 *     like: source                   # CREATE TABLE … (LIKE source INCLUDING ALL)
 *     alter: [ALTER TABLE orders_v2 ALTER COLUMN id TYPE bigint]
 *   mapping:
 *     up:   { total: "amount_cents / 100.0" }   # target column → SQL over one source row
 *     down: { amount_cents: "(total * 100)::int" } # source column → SQL over one target row
 *   backfill / verify / shift / stages / run: see docs/plans.md (the full reference, with defaults)
 *
 * Columns not named in a mapping map by same name when both tables have them. A target column
 * with no mapping and no same-named source column must have a default (or be generated/identity).
 * Without `mapping.down` the change is reads-only: only reads may shift to the new table.
 * `down: {}` declares a two-way change whose reverse mapping is entirely by name.
 */
import { z } from 'zod';
import { commandHookSchema, httpHookSchema } from '../../activities/hook';
import { isSafeIdent } from '../db/ident';
import {
  httpCheckSchema,
  prometheusCheckSchema,
  sqlCheckSchema as monitorSqlCheckBase,
} from '../monitor/checks';
import { commandRouterSchema, postgresRouterSchema, webhookRouterSchema } from '../router/config';
import { expressionProblem, selectProblem } from './sql';

const identRule =
  'use letters, digits and _ only (no quotes, semicolons, spaces or dots), start with a letter or _, at most 63 characters';

function requiredString(what: string) {
  return z.string({
    error: (iss) =>
      iss.input === undefined ? `is required: ${what}` : `must be a string: ${what}`,
  });
}

export const identifier = (what: string) =>
  requiredString(what).refine(isSafeIdent, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a safe identifier: ${identRule}`,
  });

/** "schema.table" or "table"; each part a safe identifier. */
const tableName = (what: string) =>
  requiredString(what).refine(
    (v) => {
      const parts = v.split('.');
      return parts.length <= 2 && parts.every(isSafeIdent);
    },
    {
      error: (iss) =>
        `${JSON.stringify(iss.input)} is not a safe table name: write table or schema.table; in each part ${identRule}`,
    },
  );

const expression = requiredString('a SQL expression').superRefine((v, ctx) => {
  const problem = expressionProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: `expression ${problem}` });
});

/** { column: expression } with every column a safe identifier. */
const columnMap = z.record(z.string(), expression).superRefine((rec, ctx) => {
  for (const col of Object.keys(rec)) {
    if (!isSafeIdent(col))
      ctx.addIssue({
        code: 'custom',
        path: [col],
        message: `column name ${JSON.stringify(col)} is not a safe identifier: ${identRule}`,
      });
  }
});

const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `must be a whole number: ${what}` })
    .int({ error: `must be a whole number: ${what}` })
    .min(min, { error: `must be at least ${min}: ${what}` })
    .max(max, { error: `must be at most ${max}: ${what}` });

const scalar = z.union([z.number(), z.string(), z.boolean(), z.null()], {
  error: 'must be a number, string, boolean or null (the value the query returns)',
});

export const sqlCheckSchema = z.strictObject({
  name: requiredString('a short description shown in reports').min(1, {
    error: 'must not be empty',
  }),
  sql: requiredString('a SELECT returning one value').superRefine(selectOnly),
  expect: scalar,
});

function selectOnly(v: string, ctx: z.core.$RefinementCtx<string>): void {
  const problem = selectProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}

/**
 * A monitoring check (src/monitor/checks.ts, run by the monitorChecks activity during a window):
 * http | sql (query compared with a threshold) | prometheus. Same shape as the activity's
 * checkSchema, with two plan rules on top: an sql check's query must be one SELECT, and its
 * connection defaults to the plan's connection (filled in when the stages are resolved), not to
 * "default".
 */
export const monitorCheckSchema = z.discriminatedUnion(
  'kind',
  [
    httpCheckSchema,
    monitorSqlCheckBase.extend({
      connection: identifier('a named connection').optional(),
      query: requiredString('a SELECT returning one number').superRefine(selectOnly),
    }),
    prometheusCheckSchema,
  ],
  {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? 'a check needs kind: http (a health URL), sql (a query compared with a threshold) or prometheus (a PromQL query compared with a threshold)'
        : undefined,
  },
);

/**
 * One action of a hook step (activities/hook.ts): `command` (a shell line, or [program, args]
 * run without a shell) or `url` (an HTTP call). The action's kind follows from which of the two is
 * given, so plans need not repeat it; an explicit `kind: command | http` is accepted too.
 */
const oneAction =
  'give exactly one of command (a shell command line, or [program, arguments]) or url (an http(s) URL to call)';

export const hookActionSchema = z.preprocess(
  (v, ctx) => {
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: `is required: ${oneAction}` });
      return z.NEVER;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      ctx.addIssue({ code: 'custom', message: `must be a mapping: ${oneAction}` });
      return z.NEVER;
    }
    if ('kind' in v) return v;
    const hasCommand = 'command' in v;
    if (hasCommand === 'url' in v) {
      ctx.addIssue({ code: 'custom', message: oneAction });
      return z.NEVER;
    }
    return { kind: hasCommand ? 'command' : 'http', ...v };
  },
  z.discriminatedUnion('kind', [commandHookSchema, httpHookSchema], {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? 'kind must be command or http (or leave kind out: it follows from command or url)'
        : undefined,
  }),
);

const monitorSettingsSchema = z
  .strictObject({
    intervalSeconds: int('seconds between checks in a monitoring window', 1, 86400).default(30),
    onBreach: z
      .enum(['rollback', 'pause'], { error: 'must be rollback or pause' })
      .default('rollback'),
    checks: z.array(monitorCheckSchema).default([]),
  })
  .prefault({});

const routerSchema = z.discriminatedUnion(
  'kind',
  [postgresRouterSchema, webhookRouterSchema, commandRouterSchema],
  {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? 'router kind must be postgres (the route table only), webhook (also POST each change to a URL) or command (also run a shell command on each change)'
        : undefined,
  },
);

const gateList = z.union([z.literal('all'), z.array(requiredString('a gate name').min(1)).min(1)], {
  error: 'must be all or a list of gate names, e.g. [shift]',
});

/** How the run behaves (workflows/blue-green.ts RunSettings); `cutover start` flags override it. */
export const runSchema = z
  .strictObject({
    router: routerSchema.optional(),
    monitor: monitorSettingsSchema,
    rollbackWindowSeconds: int(
      'seconds reverse sync stays on after 100% before cleanup',
      0,
      30 * 86400,
    ).default(86_400),
    keepShadowOnAbort: z.boolean({ error: 'must be true or false' }).default(false),
    autoApprove: gateList.optional(),
  })
  .prefault({});

const stepName = requiredString('a step name')
  .min(1)
  .max(63)
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, { error: 'use letters, digits, _ and - only' });

const simpleStep = <K extends string>(kind: K) =>
  z.strictObject({ kind: z.literal(kind), name: stepName.optional() });

export const stepSchema = z.discriminatedUnion(
  'kind',
  [
    simpleStep('backup'),
    simpleStep('shadow'),
    simpleStep('sync'),
    simpleStep('backfill'),
    simpleStep('index'),
    simpleStep('verify'),
    z.strictObject({
      kind: z.literal('sqlcheck'),
      name: stepName.optional(),
      checks: z.array(sqlCheckSchema).optional(),
    }),
    z.strictObject({
      kind: z.literal('approval'),
      name: stepName.optional(),
      gate: stepName.optional(),
      timeoutSeconds: int('seconds to wait before giving up', 1, 30 * 86400).optional(),
      auto: z.boolean({ error: 'must be true or false' }).default(false),
    }),
    z.strictObject({
      kind: z.literal('route'),
      name: stepName.optional(),
      percent: int('percent of traffic to the new table', 0, 100),
    }),
    z.strictObject({
      kind: z.literal('monitor'),
      name: stepName.optional(),
      seconds: int('length of the monitoring window', 0, 7 * 86400),
      checks: z.array(monitorCheckSchema).optional(),
    }),
    z.strictObject({
      kind: z.literal('hook'),
      name: stepName.optional(),
      run: hookActionSchema,
      undo: hookActionSchema.optional(),
    }),
    z.strictObject({
      kind: z.literal('swap'),
      name: stepName.optional(),
      archive: requiredString('a table name')
        .min(1)
        .max(63)
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'use letters, digits and _ only' })
        .optional(),
      lockTimeoutMs: int('lock_timeout of each swap attempt, in milliseconds', 50, 60_000).default(
        1000,
      ),
      maxWaitSeconds: int('seconds to keep trying before the swap gives up', 1, 7 * 86400).default(
        600,
      ),
    }),
    z.strictObject({
      kind: z.literal('cleanup'),
      name: stepName.optional(),
      oldTable: z
        .enum(['archive', 'drop'], { error: 'must be archive or drop' })
        .default('archive'),
      retentionHours: int('hours to keep the old table before dropping it', 0, 365 * 24).default(
        168,
      ),
    }),
  ],
  {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? 'kind must be one of backup, shadow, sync, backfill, index, verify, sqlcheck, approval, route, monitor, hook, swap, cleanup'
        : undefined,
  },
);

export const stageSchema = z.strictObject({
  name: stepName,
  steps: z.array(stepSchema).min(1, { error: 'a stage needs at least one step' }),
});

const shiftStep = z.union(
  [
    int('percent', 1, 100),
    z.strictObject({
      percent: int('percent', 1, 100),
      monitorSeconds: int('monitoring window after this step', 0, 7 * 86400).optional(),
    }),
  ],
  { error: 'each step is a percent (1-100) or { percent, monitorSeconds }' },
);

export const planSchema = z.strictObject({
  name: identifier('the plan name, e.g. widen_orders_id'),
  connection: identifier('a named connection').default('default'),
  source: tableName('the table to change, e.g. public.orders'),
  key: z
    .union([identifier('a key column'), z.array(identifier('a key column')).min(1)], {
      error: 'must be a column name or a list of column names',
    })
    .optional(),
  target: z
    .strictObject({
      table: tableName('the new table, e.g. orders_v2'),
      ddl: requiredString('a CREATE TABLE statement').optional(),
      like: z.literal('source', { error: 'the only supported value is "source"' }).optional(),
      alter: z.array(requiredString('an ALTER TABLE or CREATE INDEX statement')).optional(),
    })
    .refine((t) => (t.ddl === undefined) !== (t.like === undefined), {
      error: 'give either ddl (a CREATE TABLE statement) or like: source (plus alter statements)',
    }),
  mapping: z
    .strictObject({
      up: columnMap.default({}),
      down: columnMap.optional(),
    })
    .default({ up: {} }),
  backfill: z
    .strictObject({
      batchSize: int('rows per batch', 1, 1_000_000).default(10_000),
      pauseMs: int('pause between batches in ms', 0, 600_000).default(0),
      parallelRanges: int('key ranges copied in parallel', 1, 64).default(1),
      adaptive: z
        .strictObject({
          enabled: z.boolean({ error: 'must be true or false' }).default(true),
          targetBatchMs: int(
            'batch latency above which the backfill slows down',
            1,
            600_000,
          ).default(1000),
          minBatchSize: int('smallest batch when slowed down', 1, 1_000_000).default(1000),
          maxPauseMs: int('longest pause when slowed down', 0, 600_000).default(5000),
        })
        .prefault({}),
    })
    .prefault({}),
  verify: z
    .strictObject({
      chunkSize: int('rows per verification chunk', 1, 1_000_000).default(10_000),
      maxDiffKeys: int('differing keys reported per chunk', 1, 1000).default(10),
      sqlChecks: z.array(sqlCheckSchema).default([]),
    })
    .prefault({}),
  shift: z
    .strictObject({
      readsOnly: z.boolean({ error: 'must be true or false' }).optional(),
      steps: z
        .array(shiftStep)
        .min(1)
        .default([10, 50, 100])
        .refine(
          (steps) => {
            const p = steps.map((s) => (typeof s === 'number' ? s : s.percent));
            return p.every((v, i) => i === 0 || v > p[i - 1]!) && p[p.length - 1] === 100;
          },
          { error: 'percents must increase and end at 100, e.g. [10, 50, 100]' },
        ),
      monitorSeconds: int('default monitoring window after each step', 0, 7 * 86400).default(300),
      checks: z.array(monitorCheckSchema).default([]),
    })
    .prefault({}),
  stages: z.array(stageSchema).min(1).optional(),
  run: runSchema,
});

export type PlanFile = z.output<typeof planSchema>;
export type PlanStep = z.output<typeof stepSchema>;
export type PlanStage = z.output<typeof stageSchema>;
export type SqlCheck = z.output<typeof sqlCheckSchema>;
export type PlanMonitorCheck = z.output<typeof monitorCheckSchema>;
export type PlanHookAction = z.output<typeof hookActionSchema>;
export type PlanRun = z.output<typeof runSchema>;
export type StepKind = PlanStep['kind'];
