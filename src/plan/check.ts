/**
 * checkPlan: validates a parsed plan against the live database without changing it, and turns
 * it into the ResolvedPlan the workflow runs. Everything happens in ONE transaction that is always
 * rolled back: the new table is really created there (so its DDL is proven and its catalog can be
 * read), every mapping expression is compiled with EXPLAIN INSERT … SELECT (which also proves its
 * type fits the column), then everything vanishes. A short lock_timeout bounds how long the check
 * may wait behind application locks.
 */
import type { ClientBase } from 'pg';
import { probe } from '../db/probe';
import { parseQualifiedName, quoteIdent, quoteQualified } from '../db/ident';
import {
  type ColumnInfo,
  type DeferredObject,
  deferrableObjects,
  findKeyIndex,
  relationExists,
  tableColumns,
  tableOid,
  uniqueIndexes,
} from './catalog';
import { executeTargetDdl, TargetDdlError } from './ddl';
import { PlanError, type PlanProblem } from './load';
import type { ExpandPlan, PlanRunSettings, ResolvedPlan, RunnablePlan } from './resolved';
import { validateStep } from '../steps/io';
import { validateCheck } from '../steps/monitor';
import type { PlanFile } from './schema';
import { referencedColumns, splitTargetDdl } from './sql';
import { type PreflightSpec, preflightSpec, runPreflight } from './preflight';
import { isExpandPlan, offlineProblems, withConnection, type ResolvedStage } from './stages';
import type { ColumnMapping, ResolvedChange, TableRef } from './types';
import { computedKeyProblems } from '../sql/key-mapping';
import { inspectDependents } from '../swap/dependents';
import { renameDependents } from '../swap/rename';

export interface CheckOptions {
  fileName?: string;
  /** Environment the secrets of hooks, routers and checks are looked up in (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** lock_timeout for the check's own transaction (default 2000 ms). */
  lockTimeoutMs?: number;
  /**
   * Prove over the whole table that every row maps (preflight.ts); default true. The run does it
   * again before its first write, so a caller about to start a run may skip it here.
   */
  preflight?: boolean;
}

export interface CheckReport {
  ok: boolean;
  fileName: string;
  problems: PlanProblem[];
  /** Present when ok, for a blue-green plan. */
  plan?: ResolvedPlan;
  /** Present when ok, for an expand/contract plan (no source / target). */
  expand?: ExpandPlan;
}

/** The plan the workflow runs, whichever its kind (undefined when the check failed). */
export const runnablePlan = (report: CheckReport): RunnablePlan | undefined =>
  report.plan ?? report.expand;

const refText = (t: TableRef) => `${t.schema}.${t.table}`;

/** Resolves names and DDL text without touching the database (a blue-green plan's). */
function planTables(plan: PlanFile & { source: string; target: NonNullable<PlanFile['target']> }): {
  source: TableRef;
  target: TableRef;
  ddl: Array<{ sql: string; path: string }>;
  problems: PlanProblem[];
} {
  const s = parseQualifiedName(plan.source);
  const source = { schema: s.schema, table: s.name };
  const t = parseQualifiedName(plan.target.table, source.schema);
  const target = { schema: t.schema, table: t.name };
  const problems: PlanProblem[] = [];
  const ddl: Array<{ sql: string; path: string }> = [];
  if (target.schema === source.schema && target.table === source.table)
    problems.push({
      path: 'target.table',
      message: 'the new table must have a different name than the source',
    });
  if (plan.target.like === 'source') {
    ddl.push({
      sql: `CREATE TABLE ${quoteQualified(target.schema, target.table)} (LIKE ${quoteQualified(source.schema, source.table)} INCLUDING ALL)`,
      path: 'target.like',
    });
  } else if (plan.target.ddl !== undefined) {
    const stmts = splitTargetDdl(plan.target.ddl, target, 'ddl');
    if (typeof stmts === 'string') problems.push({ path: 'target.ddl', message: stmts });
    else ddl.push(...stmts.map((st) => ({ sql: st.sql, path: 'target.ddl' })));
  }
  for (const [i, text] of (plan.target.alter ?? []).entries()) {
    const stmts = splitTargetDdl(text, target, 'alter');
    if (typeof stmts === 'string') problems.push({ path: `target.alter[${i}]`, message: stmts });
    else ddl.push(...stmts.map((st) => ({ sql: st.sql, path: `target.alter[${i}]` })));
  }
  return { source, target, ddl, problems };
}

interface MappingSide {
  /** 'up' (old → new) or 'down' (new → old). */
  direction: 'up' | 'down';
  from: TableRef;
  to: TableRef;
  fromColumns: ColumnInfo[];
  toColumns: ColumnInfo[];
  explicit: Record<string, string>;
  /** Key columns (same names on both sides). */
  key: string[];
}

/** Builds and compiles one direction of the mapping; pushes problems at mapping.<dir>.<col>. */
async function resolveMapping(
  client: ClientBase,
  side: MappingSide,
  problems: PlanProblem[],
): Promise<ColumnMapping[]> {
  const out: ColumnMapping[] = [];
  const fromNames = new Set(side.fromColumns.map((c) => c.name));
  const toByName = new Map(side.toColumns.map((c) => [c.name, c]));
  const dirName = side.direction === 'up' ? 'target' : 'source';
  const path = (col: string) => `mapping.${side.direction}.${col}`;
  for (const col of Object.keys(side.explicit)) {
    const c = toByName.get(col);
    if (!c)
      problems.push({
        path: path(col),
        message: `the ${dirName} table ${refText(side.to)} has no column "${col}": fix the name (mapping.${side.direction} keys are ${dirName} columns)`,
      });
    else if (c.generated)
      problems.push({
        path: path(col),
        message: `"${col}" is a generated column of ${refText(side.to)}: PostgreSQL computes it, remove its mapping`,
      });
  }
  for (const c of side.toColumns) {
    if (c.generated) continue;
    const given = side.explicit[c.name];
    if (given !== undefined) {
      out.push({ column: c.name, expression: given });
    } else if (fromNames.has(c.name)) {
      out.push({ column: c.name, expression: quoteIdent(c.name) });
    } else if (!c.hasDefault && c.identity === '') {
      problems.push({
        path: path(c.name),
        message: `${dirName} column "${c.name}" has no mapping, no same-named ${side.direction === 'up' ? 'source' : 'target'} column and no default: add mapping.${side.direction}.${c.name}: <SQL expression over one ${side.direction === 'up' ? 'source' : 'target'} row> (NULL if it should stay empty), or give the column a default`,
      });
    }
  }
  // Key columns must carry the key: same column, perhaps re-typed, never computed from others.
  for (const k of side.key) {
    const m = out.find((x) => x.column === k);
    if (!m) {
      if (!toByName.has(k))
        problems.push({
          path: side.direction === 'up' ? 'target' : 'mapping.down',
          message: `key column "${k}" is missing from ${refText(side.to)}: the new table must keep the key columns under the same names`,
        });
      continue;
    }
    if (side.explicit[k] !== undefined) {
      const refs = referencedColumns(side.explicit[k]);
      if (refs.size !== 1 || !refs.has(k))
        problems.push({
          path: path(k),
          message: `key column "${k}" must be computed from "${k}" alone (e.g. ${k}::bigint): rows are matched by key across the two tables`,
        });
    }
  }
  // Compile each expression exactly where it will run: INSERT INTO to (col) SELECT expr FROM from.
  for (const m of out) {
    const col = toByName.get(m.column)!;
    if (col.identity === 'a') {
      problems.push({
        path: path(m.column),
        message: `"${m.column}" is GENERATED ALWAYS AS IDENTITY in ${refText(side.to)}, so rows cannot be copied with their values: make it GENERATED BY DEFAULT (ALTER TABLE … ALTER COLUMN ${m.column} SET GENERATED BY DEFAULT)`,
      });
      continue;
    }
    const err = await probe(
      client,
      `EXPLAIN (COSTS OFF) INSERT INTO ${quoteQualified(side.to.schema, side.to.table)} (${quoteIdent(m.column)}) SELECT (${m.expression}\n) FROM ${quoteQualified(side.from.schema, side.from.table)}`,
    );
    if (err) {
      const implicit = side.explicit[m.column] === undefined;
      problems.push({
        path: path(m.column),
        message: implicit
          ? `maps by name from ${side.direction === 'up' ? 'source' : 'target'} column "${m.column}" but does not fit: ${err}: add an explicit expression (e.g. a cast)`
          : `expression does not compile against ${refText(side.from)}: ${err}: fix the expression (it sees one ${side.direction === 'up' ? 'source' : 'target'} row; refer to its columns by name)`,
      });
    }
  }
  return out;
}

/**
 * Validates `plan` against the database reachable through `client` and resolves it. Read-only:
 * everything runs in a transaction that is rolled back. Never throws for plan problems (they are
 * in the report); throws only when the database itself fails.
 */
export async function checkPlan(
  plan: PlanFile,
  client: ClientBase,
  options: CheckOptions = {},
): Promise<CheckReport> {
  if (isExpandPlan(plan)) return checkExpandPlan(plan, client, options);
  const { report, spec } = await checkDefinition(plan, client, options);
  if (!report.ok || !spec || options.preflight === false) return report;
  // Outside the rolled-back transaction: a whole-table scan must not hold one snapshot throughout.
  const pre = await runPreflight(client, report.plan!.change, spec, {
    throttle: {
      batchSize: plan.backfill.batchSize,
      pauseMs: plan.backfill.pauseMs,
      adaptive: plan.backfill.adaptive,
    },
  });
  return pre.ok ? report : { ok: false, fileName: report.fileName, problems: pre.problems };
}

/** Everything but the data pre-flight, in one transaction that is always rolled back. */
async function checkDefinition(
  plan: PlanFile,
  client: ClientBase,
  options: CheckOptions,
): Promise<{ report: CheckReport; spec?: PreflightSpec }> {
  const fileName = options.fileName ?? 'plan.yaml';
  const { problems, stages } = offlineProblems(plan);
  if (plan.source === undefined || plan.target === undefined)
    return { report: { ok: false, fileName, problems } };
  const {
    source,
    target,
    ddl,
    problems: nameProblems,
  } = planTables({
    ...plan,
    source: plan.source,
    target: plan.target,
  });
  problems.push(...nameProblems);
  const fail = () => ({ report: { ok: false, fileName, problems } });

  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [
      `${options.lockTimeoutMs ?? 2000}ms`,
    ]);
    const sourceOid = await tableOid(client, source);
    if (sourceOid === null) {
      problems.push({
        path: 'source',
        message: `table ${refText(source)} does not exist (connection "${plan.connection}"): check the name (schema.table) and the connection`,
      });
      return fail();
    }
    if (await relationExists(client, target))
      problems.push({
        path: 'target.table',
        message: `${refText(target)} already exists: choose a new name, or drop it if it is left over from an earlier attempt`,
      });

    const sourceColumns = await tableColumns(client, sourceOid);
    const key = await resolveKey(client, plan, source, sourceOid, sourceColumns, problems);
    // Everything below needs the key and the new table created from its DDL.
    if (key === null || problems.some((p) => p.path.startsWith('target'))) return fail();

    // Create the new table for real, inside the transaction that will be rolled back.
    try {
      await executeTargetDdl(
        client,
        target.schema,
        ddl.map((d) => d.sql),
      );
    } catch (err) {
      if (!(err instanceof TargetDdlError)) throw err;
      problems.push({
        path: ddl[err.statementIndex]!.path,
        message: `PostgreSQL rejects the new table's DDL: ${err.message}: fix the statement`,
      });
      return fail();
    }
    const targetOid = await tableOid(client, target);
    if (targetOid === null) {
      problems.push({
        path: 'target.table',
        message: `the DDL did not create ${refText(target)}: make its CREATE TABLE name the target table`,
      });
      return fail();
    }
    const targetColumns = await tableColumns(client, targetOid);
    const targetKeyIndex = findKeyIndex(await uniqueIndexes(client, targetOid), key);
    if (!targetKeyIndex && key.every((k) => targetColumns.some((c) => c.name === k)))
      problems.push({
        path: plan.target?.like ? 'target.alter' : 'target.ddl',
        message: `the new table has no primary key or unique index on exactly (${key.join(', ')}): add PRIMARY KEY (${key.join(', ')}) to its DDL (the copy matches rows by key)`,
      });
    for (const k of key) {
      const c = targetColumns.find((x) => x.name === k);
      if (c && !c.notNull)
        problems.push({
          path: plan.target?.like ? 'target.alter' : 'target.ddl',
          message: `key column "${k}" of the new table is nullable: declare it NOT NULL`,
        });
    }

    problems.push(...computedKeyProblems(key, plan.mapping));
    const up = await resolveMapping(
      client,
      {
        direction: 'up',
        from: source,
        to: target,
        fromColumns: sourceColumns,
        toColumns: targetColumns,
        explicit: plan.mapping.up,
        key,
      },
      problems,
    );
    const down =
      plan.mapping.down === undefined
        ? undefined
        : await resolveMapping(
            client,
            {
              direction: 'down',
              from: target,
              to: source,
              fromColumns: targetColumns,
              toColumns: sourceColumns,
              explicit: plan.mapping.down,
              key,
            },
            problems,
          );

    const readsOnly = down === undefined || plan.shift.readsOnly === true;
    const change: ResolvedChange = {
      name: plan.name,
      connection: plan.connection,
      source,
      target,
      sourceKey: key,
      targetKey: key,
      up,
      ...(down ? { down } : {}),
      ...(plan.mapping.lossy !== undefined ? { lossy: plan.mapping.lossy } : {}),
    };
    // A broken mapping is already reported; the steps would only repeat it in their words.
    if (problems.length === 0)
      await validateSteps(client, plan, change, readsOnly, stages, problems, options.env);

    const deferred: DeferredObject[] = await deferrableObjects(client, targetOid, key);
    // What points at the old table and what the swap (or the rename) does with each (shown by
    // `cutover plan`); the finish step's validate refuses the ones it cannot carry.
    const renames = stages.some((st) => st.steps.some((step) => step.kind === 'rename'));
    const dependents = renames
      ? await renameDependents(client, source, target)
      : await inspectDependents(client, source);
    if (problems.length > 0) return fail();

    const resolved: ResolvedPlan = {
      version: 1,
      fileName,
      change,
      readsOnly,
      targetDdl: ddl.map((d) => d.sql),
      deferred,
      backfill: plan.backfill,
      verify: plan.verify,
      shift: {
        readsOnly,
        steps: plan.shift.steps.map((s) =>
          typeof s === 'number'
            ? { percent: s, monitorSeconds: plan.shift.monitorSeconds }
            : { percent: s.percent, monitorSeconds: s.monitorSeconds ?? plan.shift.monitorSeconds },
        ),
        checks: plan.shift.checks.map((c) => withConnection(c, plan.connection)),
      },
      stages,
      settings: runSettings(plan),
      dependents,
    };
    const spec = await preflightSpec(client, resolved.change, {
      sourceColumns,
      sourceUnique: await uniqueIndexes(client, sourceOid),
      targetColumns,
      targetUnique: await uniqueIndexes(client, targetOid),
    });
    return { report: { ok: true, fileName, problems: [], plan: resolved }, spec };
  } finally {
    await client.query('ROLLBACK');
  }
}

/**
 * An expand/contract plan (no source / target): every step's own validate, in order, each
 * judging the table as the earlier steps will leave it, in one transaction that is rolled back.
 * The tables the steps name must exist; nothing else is created or compiled here.
 */
async function checkExpandPlan(
  plan: PlanFile,
  client: ClientBase,
  options: CheckOptions,
): Promise<CheckReport> {
  const fileName = options.fileName ?? 'plan.yaml';
  const { problems, stages } = offlineProblems(plan);
  if (problems.length > 0) return { ok: false, fileName, problems };
  await client.query('BEGIN');
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [
      `${options.lockTimeoutMs ?? 2000}ms`,
    ]);
    await validateSteps(client, plan, undefined, false, stages, problems, options.env);
  } finally {
    await client.query('ROLLBACK');
  }
  if (problems.length > 0) return { ok: false, fileName, problems };
  const expand: ExpandPlan = {
    version: 1,
    kind: 'expand',
    fileName,
    name: plan.name,
    connection: plan.connection,
    tables: stepTables(stages),
    backfill: plan.backfill,
    stages,
    settings: runSettings(plan),
  };
  return { ok: true, fileName, problems: [], expand };
}

/** The tables an expand/contract plan's steps change, `schema.table`, first mention first. */
function stepTables(stages: ResolvedStage[]): string[] {
  const out: string[] = [];
  const add = (name: string | undefined) => {
    if (name === undefined) return;
    const { schema, name: table } = parseQualifiedName(name);
    const text = `${schema}.${table}`;
    if (!out.includes(text)) out.push(text);
  };
  for (const step of stages.flatMap((st) => st.steps)) {
    if (step.kind === 'batchMigrate') add(step.target?.table ?? step.source.table);
    else if ('table' in step && typeof step.table === 'string') add(step.table);
  }
  return out;
}

/**
 * Every step's own validate (src/steps/<kind>/index.ts), in stage order, then the plan-wide
 * monitoring checks. One source of truth: `plan check`, `cutover start` and the tests all come
 * through here. Problems are deduplicated (the default stages repeat shift.checks per window).
 */
async function validateSteps(
  client: ClientBase,
  plan: PlanFile,
  change: ResolvedChange | undefined,
  readsOnly: boolean,
  stages: ResolvedStage[],
  problems: PlanProblem[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const seen = new Set<string>();
  const problem = (path: string, message: string) => {
    const id = `${path}\u0000${message}`;
    if (seen.has(id)) return;
    seen.add(id);
    problems.push({ path, message });
  };
  const base = { client, plan, change, readsOnly, env, problem };
  const earlier: ResolvedStage['steps'] = [];
  for (const [si, stage] of stages.entries())
    for (const [pi, step] of stage.steps.entries()) {
      // Default stages have no place in the file: a step's problems point at what it came from.
      const path = plan.stages ? `stages[${si}].steps[${pi}]` : `${stage.name}.${step.kind}`;
      await validateStep(step, { ...base, path, earlier: [...earlier] });
      earlier.push(step);
    }
  for (const [i, check] of plan.run.monitor.checks.entries())
    await validateCheck(
      client,
      withConnection(check, plan.connection),
      `run.monitor.checks[${i}]`,
      base,
    );
}

/** The plan's `run:` section in the workflow's RunSettings terms. */
export function runSettings(plan: PlanFile): PlanRunSettings {
  const run = plan.run;
  return {
    checkIntervalSeconds: run.monitor.intervalSeconds,
    onBreach: run.monitor.onBreach,
    monitorChecks: run.monitor.checks.map((c) => withConnection(c, plan.connection)),
    rollbackWindowSeconds: run.rollbackWindowSeconds,
    keepShadowOnAbort: run.keepShadowOnAbort,
    ...(run.router ? { router: run.router } : {}),
  };
}

async function resolveKey(
  client: ClientBase,
  plan: PlanFile,
  source: TableRef,
  oid: number,
  columns: ColumnInfo[],
  problems: PlanProblem[],
): Promise<string[] | null> {
  const indexes = await uniqueIndexes(client, oid);
  const describe = () => {
    const usable = indexes.filter(
      (i) => i.valid && !i.partial && i.columns.every((c) => c !== null),
    );
    return usable.length > 0
      ? ` (unique indexes there: ${usable.map((i) => `${i.name} (${i.columns.join(', ')})`).join('; ')})`
      : '';
  };
  const before = problems.length;
  let key: string[];
  if (plan.key === undefined) {
    const pk = indexes.find((i) => i.primary);
    if (!pk) {
      problems.push({
        path: 'key',
        message: `${refText(source)} has no primary key: set key: [columns] naming the NOT NULL columns of a unique index${describe()}`,
      });
      return null;
    }
    key = pk.columns as string[];
  } else {
    key = typeof plan.key === 'string' ? [plan.key] : plan.key;
    const missing = key.filter((k) => !columns.some((c) => c.name === k));
    if (missing.length > 0) {
      problems.push({
        path: 'key',
        message: `${refText(source)} has no column ${missing.map((m) => `"${m}"`).join(', ')}: name existing columns`,
      });
      return null;
    }
    if (new Set(key).size !== key.length) {
      problems.push({ path: 'key', message: 'lists a column twice: name each key column once' });
      return null;
    }
    if (!findKeyIndex(indexes, key)) {
      problems.push({
        path: 'key',
        message: `no primary key or unique index of ${refText(source)} is on exactly (${key.join(', ')}): create one (CREATE UNIQUE INDEX CONCURRENTLY …) or name the columns of an existing one${describe()}`,
      });
      return null;
    }
  }
  for (const k of key) {
    if (!columns.find((c) => c.name === k)!.notNull) {
      problems.push({
        path: 'key',
        message: `key column "${k}" of ${refText(source)} is nullable: a unique index lets NULL keys repeat, so rows could not be matched: make it NOT NULL (CHECK … NOT VALID, VALIDATE, SET NOT NULL) or choose another key`,
      });
    }
  }
  return problems.length > before ? null : key;
}

/** checkPlan, throwing PlanError with every problem when the plan cannot run. */
export async function resolvePlan(
  plan: PlanFile,
  client: ClientBase,
  options: CheckOptions = {},
): Promise<ResolvedPlan> {
  const resolved = await resolveRunnablePlan(plan, client, options);
  if (resolved.kind === 'expand')
    throw new PlanError(resolved.fileName, [
      { path: 'source', message: 'a blue-green plan is expected here: add source and target' },
    ]);
  return resolved;
}

/** checkPlan, throwing PlanError with every problem; a blue-green or expand/contract plan. */
export async function resolveRunnablePlan(
  plan: PlanFile,
  client: ClientBase,
  options: CheckOptions = {},
): Promise<RunnablePlan> {
  const report = await checkPlan(plan, client, options);
  const resolved = runnablePlan(report);
  if (!report.ok || !resolved) throw new PlanError(report.fileName, report.problems);
  return resolved;
}
