/**
 * The plan file schema (YAML → zod). A plan describes ONE blue-green table change, or (without
 * `source` and `target`) an expand/contract change: only `stages` of steps that change the tables
 * they name in place. Field by field, with defaults (plans/*.yaml are complete, tested examples):
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
 *     lossy: "<reason>"            # optional: accept a mapping that truncates / does not round-trip
 *   finish: swap                     # or rename: the new table keeps its name (posts → articles)
 *   backfill / verify / shift / stages / run: see docs/plans.md (the full reference, with defaults)
 *
 * Columns not named in a mapping map by same name when both tables have them. A target column
 * with no mapping and no same-named source column must have a default (or be generated/identity).
 * Without `mapping.down` the change is reads-only: only reads may shift to the new table.
 * `down: {}` declares a two-way change whose reverse mapping is entirely by name.
 */
import { z } from 'zod';
import { commandRouterSchema, postgresRouterSchema, webhookRouterSchema } from '../router/config';
import { stepSchema } from '../steps/schemas';
import {
  columnMap,
  identifier,
  int,
  loadBudgetSchema,
  monitorCheckSchema,
  requiredString,
  sqlCheckSchema,
  stepName,
  tableName,
} from './fields';

export { identifier, monitorCheckSchema, sqlCheckSchema, stepSchema };
export type { PlanMonitorCheck, SqlCheck } from './fields';

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
  // Both absent: an expand/contract plan, whose steps name their own tables (load.ts, stages.ts).
  source: tableName('the table to change, e.g. public.orders').optional(),
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
    })
    .optional(),
  mapping: z
    .strictObject({
      up: columnMap.default({}),
      down: columnMap.optional(),
      // Accepts values the mapping changes (truncated, rounded, not round-tripping through down);
      // never values the new table would reject. The reason is kept with the plan for reviewers.
      lossy: requiredString('why losing data in this mapping is acceptable')
        .trim()
        .min(1, { error: 'must say why the loss is acceptable' })
        .optional(),
    })
    .default({ up: {} }),
  backfill: z
    .strictObject({
      batchSize: int('rows per batch', 1, 1_000_000).default(10_000),
      pauseMs: int('pause between batches in ms', 0, 600_000).default(0),
      parallelRanges: int('key ranges copied in parallel', 1, 64).default(1),
      loadBudget: loadBudgetSchema,
      adaptive: z
        .strictObject({
          enabled: z.boolean({ error: 'must be true or false' }).default(false),
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
      // [] finishes directly (the swap or rename without traffic steps), for applications that
      // do not route.
      steps: z
        .array(shiftStep)
        .default([10, 50, 100])
        .refine(
          (steps) => {
            const p = steps.map((s) => (typeof s === 'number' ? s : s.percent));
            return (
              p.length === 0 ||
              (p.every((v, i) => i === 0 || v > p[i - 1]!) && p[p.length - 1] === 100)
            );
          },
          {
            error:
              'percents must increase and end at 100, e.g. [10, 50, 100] (or [] to finish without traffic steps)',
          },
        ),
      monitorSeconds: int('default monitoring window after each step', 0, 7 * 86400).default(300),
      checks: z.array(monitorCheckSchema).default([]),
    })
    .prefault({}),
  /**
   * How the run ends (docs/plans.md, "Two ways to finish"): `swap` gives the new table the old
   * table's name; `rename` is for a plan whose point is the new name (posts → articles): the new
   * table keeps its name and the old name stays usable as a view over it until cleanup. Picks
   * the finish step of the default stages; with `stages`, the plan's own step must agree.
   */
  finish: z.enum(['swap', 'rename'], { error: 'must be swap or rename' }).optional(),
  stages: z.array(stageSchema).min(1).optional(),
  run: runSchema,
});

export type PlanFile = z.output<typeof planSchema>;
export type PlanStage = z.output<typeof stageSchema>;
export type PlanRun = z.output<typeof runSchema>;
export type { PlanHookAction } from '../steps/hook/schema';
export type { PlanStep, StepKind } from '../steps/schemas';
