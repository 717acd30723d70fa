/**
 * The building blocks of plan schemas, shared by the plan file schema (schema.ts) and every step
 * kind's own schema (src/steps/<kind>/schema.ts). Every rule carries the message a user sees.
 */
import { z } from 'zod';
import { isSafeIdent } from '../db/ident';
import { quoteInput } from '../safe-text';
import {
  httpCheckSchema,
  prometheusCheckSchema,
  sqlCheckSchema as monitorSqlCheckBase,
} from '../monitor/checks';
import { expressionProblem, selectProblem } from './sql';

export const identRule =
  'use letters, digits and _ only (no quotes, semicolons, spaces or dots), start with a letter or _, at most 63 characters';

export function requiredString(what: string) {
  return z.string({
    error: (iss) =>
      iss.input === undefined ? `is required: ${what}` : `must be a string: ${what}`,
  });
}

export const identifier = (what: string) =>
  requiredString(what).refine(isSafeIdent, {
    error: (iss) => `${quoteInput(iss.input)} is not a safe identifier: ${identRule}`,
  });

/** "schema.table" or "table"; each part a safe identifier. */
export const tableName = (what: string) =>
  requiredString(what).refine(
    (v) => {
      const parts = v.split('.');
      return parts.length <= 2 && parts.every(isSafeIdent);
    },
    {
      error: (iss) =>
        `${quoteInput(iss.input)} is not a safe table name: write table or schema.table; in each part ${identRule}`,
    },
  );

export const expression = requiredString('a SQL expression').superRefine((v, ctx) => {
  const problem = expressionProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: `expression ${problem}` });
});

/** { column: expression } with every column a safe identifier. */
export const columnMap = z.record(z.string(), expression).superRefine((rec, ctx) => {
  for (const col of Object.keys(rec)) {
    if (!isSafeIdent(col))
      ctx.addIssue({
        code: 'custom',
        path: [col],
        message: `column name ${quoteInput(col)} is not a safe identifier: ${identRule}`,
      });
  }
});

export const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `must be a whole number: ${what}` })
    .int({ error: `must be a whole number: ${what}` })
    .min(min, { error: `must be at least ${min}: ${what}` })
    .max(max, { error: `must be at most ${max}: ${what}` });

/** `20%` or 0.2: a share of the application's throughput. */
export const share = (what: string) =>
  z
    .union([z.number(), z.string().regex(/^\d+(\.\d+)?%$/)], {
      error: `must be a percentage like 20% (or a fraction like 0.2): ${what}`,
    })
    .transform((v) => (typeof v === 'number' ? v : Number(v.slice(0, -1)) / 100))
    .refine((v) => v > 0 && v < 1, { error: `must be between 0% and 100%: ${what}` });

export const loadLimits = {
  activeBackends: int('active backends besides cutover', 1, 100_000).optional(),
  lockWaits: int('backends waiting on a lock', 1, 100_000).optional(),
  replicationLagSeconds: int('replica replay lag in seconds', 1, 86_400).optional(),
  probeP95Ms: int('p95 latency of the probe query in ms', 1, 600_000).optional(),
};

/** See src/backfill/load-budget.ts; governs the backfill and verification. */
export const loadBudgetSchema = z
  .strictObject({
    enabled: z.boolean({ error: 'must be true or false' }).default(true),
    maxAppSlowdown: share('what the application may lose').default(0.2),
    probe: requiredString('a cheap read-only query that stands for the application').optional(),
    maxLoad: z.strictObject(loadLimits).optional(),
    criticalLoad: z
      .strictObject({ ...loadLimits, appSlowdown: share('slowdown that pauses').optional() })
      .optional(),
  })
  .prefault({});

export const scalar = z.union([z.number(), z.string(), z.boolean(), z.null()], {
  error: 'must be a number, string, boolean or null (the value the query returns)',
});

export const sqlCheckSchema = z.strictObject({
  name: requiredString('a short description shown in reports').min(1, {
    error: 'must not be empty',
  }),
  sql: requiredString('a SELECT returning one value').superRefine(selectOnly),
  expect: scalar,
});

export function selectOnly(v: string, ctx: z.core.$RefinementCtx<string>): void {
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

export const stepName = requiredString('a step name')
  .min(1)
  .max(63)
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, { error: 'use letters, digits, _ and - only' });

export type SqlCheck = z.output<typeof sqlCheckSchema>;
export type PlanMonitorCheck = z.output<typeof monitorCheckSchema>;

/**
 * A column type as ALTER TABLE takes it: a name (several words allowed, e.g. `double
 * precision`), an optional modifier and array brackets. Anything else (casts, semicolons) is
 * refused here, so the type can be written into DDL; the plan check proves it exists.
 */
export const sqlType = requiredString('a column type, e.g. text or varchar(200)').regex(
  /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?( [A-Za-z_][A-Za-z0-9_]*)*( ?\(\d+( ?, ?\d+)?\))?(\[\])*$/,
  { error: 'must be a type name such as text, bigint, numeric(12, 2) or text[]' },
);
