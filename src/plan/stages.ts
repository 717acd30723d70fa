/**
 * The stage list as data: the workflow walks it step by step. Defaults follow docs/design.md —
 * prepare → validate → approval → shift → swap → approval → cleanup — and a plan may replace them with
 * its own `stages` (e.g. to add hooks). Every step gets a unique `id` for status and signals.
 */
import { resolveStep, stepKinds, type PlanStep, type ResolvedStep } from '../steps/schemas';
import { withConnection } from '../steps/monitor/schema';
import { stepSpecs } from '../steps/specs';
import type { StepSpec } from '../steps/types';
import type { PlanFile, PlanStage, SqlCheck } from './schema';

export type { ResolvedStep } from '../steps/schemas';
export type { ResolvedHookStep } from '../steps/hook/schema';
export { withConnection };

export interface ResolvedStage {
  name: string;
  steps: ResolvedStep[];
}

export function defaultStages(plan: PlanFile): PlanStage[] {
  const shift: PlanStep[] = [];
  for (const s of plan.shift.steps) {
    const step = typeof s === 'number' ? { percent: s } : s;
    shift.push({ kind: 'route', percent: step.percent });
    shift.push({
      kind: 'monitor',
      seconds: step.monitorSeconds ?? plan.shift.monitorSeconds,
      ...(plan.shift.checks.length > 0 ? { checks: plan.shift.checks } : {}),
    });
  }
  const validate: PlanStep[] = [{ kind: 'verify' }];
  if (plan.verify.sqlChecks.length > 0) validate.push({ kind: 'sqlcheck' });
  return [
    {
      name: 'prepare',
      steps: [
        { kind: 'backup' },
        { kind: 'shadow' },
        { kind: 'sync' },
        { kind: 'backfill' },
        { kind: 'index' },
      ],
    },
    { name: 'validate', steps: validate },
    { name: 'approve-shift', steps: [{ kind: 'approval', gate: 'shift', auto: false }] },
    // `shift.steps: []`: the finish comes straight after the gate (a stage needs a step).
    ...(shift.length > 0 ? [{ name: 'shift', steps: shift }] : []),
    plan.finish === 'rename'
      ? { name: 'rename', steps: [{ kind: 'rename', lockTimeoutMs: 1000, maxWaitSeconds: 600 }] }
      : { name: 'swap', steps: [{ kind: 'swap', lockTimeoutMs: 1000, maxWaitSeconds: 600 }] },
    { name: 'approve-cleanup', steps: [{ kind: 'approval', gate: 'cleanup', auto: false }] },
    { name: 'cleanup', steps: [{ kind: 'cleanup', oldTable: 'archive', retentionHours: 168 }] },
  ];
}

export interface StageProblem {
  path: string;
  message: string;
}

/**
 * Gives each step an id (`stage.name` or `stage.kind[-n]`), fills sqlcheck's default checks, the
 * gates' names and `auto` (step `auto: true` or listed in run.autoApprove), and checks the order
 * rules that keep data safe: the shadow table before sync, sync before backfill (so no write is
 * missed), indexes and verification after the backfill, traffic only after verification.
 */
export function resolveStages(
  plan: PlanFile,
  checks: SqlCheck[],
): { stages: ResolvedStage[]; problems: StageProblem[] } {
  const autoApprove = plan.run.autoApprove;
  const autoGate = (gate: string) =>
    autoApprove === 'all' || (autoApprove !== undefined && autoApprove.includes(gate));
  const gates = new Set<string>();
  // No source / target: an expand/contract plan. It has no default stages (they build a new
  // table) and runs only the kinds that change a table in place (spec `standalone`).
  const expand = isExpandPlan(plan);
  const given = plan.stages ?? (expand ? [] : defaultStages(plan));
  const problems: StageProblem[] = [];
  const seenStage = new Set<string>();
  const ids = new Set<string>();
  const firstAt = new Map<string, number>();
  const specOf = (k: PlanStep['kind']): StepSpec<never> => stepSpecs[k];
  let position = 0;
  const stages = given.map((stage, si) => {
    if (seenStage.has(stage.name))
      problems.push({
        path: `stages[${si}].name`,
        message: `stage "${stage.name}" appears twice: give each stage its own name`,
      });
    seenStage.add(stage.name);
    const steps = stage.steps.map((step, i): ResolvedStep => {
      let id = `${stage.name}.${step.name ?? step.kind}`;
      for (let n = 2; ids.has(id); n++) id = `${stage.name}.${step.name ?? step.kind}-${n}`;
      ids.add(id);
      if (expand && !specOf(step.kind).standalone)
        problems.push({
          path: `stages[${si}].steps[${i}].kind`,
          message: `step kind "${step.kind}" needs a blue-green plan (source and target: the new table it works on); this plan has neither, so it is an expand/contract plan, which runs ${stepKinds.filter((k) => specOf(k).standalone).join(', ')}: add source and target, or remove the step`,
        });
      if (!firstAt.has(step.kind)) firstAt.set(step.kind, position);
      else if (specOf(step.kind).once)
        problems.push({
          path: `stages[${si}].steps[${i}].kind`,
          message: `step kind "${step.kind}" appears twice: a plan runs it once`,
        });
      position++;
      return resolveStep(step, id, {
        stageName: stage.name,
        connection: plan.connection,
        sqlChecks: checks,
        autoGate,
        gates,
      });
    });
    return { name: stage.name, steps };
  });

  if (Array.isArray(autoApprove))
    autoApprove.forEach((gate, i) => {
      if (!gates.has(gate))
        problems.push({
          path: `run.autoApprove[${i}]`,
          message: `no approval gate is named "${gate}" (${gates.size ? `gates: ${[...gates].join(', ')}` : 'the plan has no approval step'}): fix the name or remove it`,
        });
    });

  const at = (k: string) => firstAt.get(k);
  // Stage rules from the registry: required kinds first, then the order rules, in kind order.
  if (expand) {
    if (plan.stages === undefined)
      problems.push({
        path: 'stages',
        message:
          'a plan without source and target is an expand/contract plan: list its steps under stages (e.g. addColumn, backfillColumn, setNotNull, createIndex), or add source and target for a blue-green change',
      });
    // The order rules below are about the new table's steps, which an expand plan cannot have.
    return { stages, problems };
  }
  for (const k of stepKinds) {
    const why = specOf(k).required;
    if (why !== undefined && at(k) === undefined)
      problems.push({ path: 'stages', message: `a "${k}" step is required: ${why}` });
  }
  for (const after of stepKinds)
    for (const rule of specOf(after).after ?? []) {
      const a = at(rule.kind);
      const b = at(after);
      if (b !== undefined && (a === undefined || a > b))
        problems.push({
          path: 'stages',
          message: `a "${rule.kind}" step must come before "${after}": ${rule.why}`,
        });
    }
  // The finish's own rules (beyond `after` in its spec): one finish, the one `finish` names, every
  // route step before it, and cleanup, which ends its rollback window, after it.
  const swapAt = at('swap');
  const renameAt = at('rename');
  if (swapAt !== undefined && renameAt !== undefined)
    problems.push({
      path: 'stages',
      message:
        'a plan finishes with a "swap" or a "rename", not both: keep "rename" when the point of the plan is the new name, else "swap"',
    });
  if (plan.finish !== undefined && plan.stages !== undefined) {
    const other = plan.finish === 'rename' ? 'swap' : 'rename';
    if (at(other) !== undefined || at(plan.finish) === undefined)
      problems.push({
        path: 'finish',
        message: `finish: ${plan.finish} but the stages ${at(other) !== undefined ? `have a "${other}" step` : `have no "${plan.finish}" step`}: put a "${plan.finish}" step after the shift, or change finish`,
      });
  }
  const finishAt = swapAt ?? renameAt;
  const finishKind = swapAt !== undefined ? 'swap' : 'rename';
  const routeAfterFinish = given
    .flatMap((s) => s.steps)
    .slice((finishAt ?? Infinity) + 1)
    .some((s) => s.kind === 'route');
  if (routeAfterFinish)
    problems.push({
      path: 'stages',
      message:
        finishKind === 'swap'
          ? 'a "route" step after the "swap": once swapped, the original name holds the new table, so routing means nothing; move the route steps before the swap'
          : 'a "route" step after the "rename": the rename sends every key to the new table (the old name is a view over it), so routing means nothing; move the route steps before the rename',
    });
  const cleanupAt = at('cleanup');
  if (finishAt !== undefined && cleanupAt !== undefined && cleanupAt < finishAt)
    problems.push({
      path: 'stages',
      message: `the "cleanup" step must come after the "${finishKind}": cleanup ends the ${finishKind}’s rollback window`,
    });
  return { stages, problems };
}

/** True for a plan without source and target: an expand/contract plan. */
export function isExpandPlan(plan: Pick<PlanFile, 'source' | 'target'>): boolean {
  return plan.source === undefined && plan.target === undefined;
}

/**
 * Fields only a blue-green plan has (they describe the new table, the copy, the verification and
 * the traffic shift); an expand/contract plan that gives one of them is refused, so a plan that
 * forgot its source is not taken for an expand/contract plan in silence. `given` is the field
 * names of the file (the parsed plan has defaults filled in).
 */
export const blueGreenOnlyFields = ['key', 'mapping', 'verify', 'shift', 'finish'] as const;

export function planKindProblems(
  plan: Pick<PlanFile, 'source' | 'target'>,
  given: ReadonlySet<string> = new Set(),
): StageProblem[] {
  if (plan.source !== undefined && plan.target === undefined)
    return [
      {
        path: 'target',
        message:
          'is required with source (the new table, e.g. { table: orders_v2, like: source }); or remove source for an expand/contract plan, whose steps name their own tables',
      },
    ];
  if (plan.source === undefined && plan.target !== undefined)
    return [
      {
        path: 'source',
        message:
          'is required with target (the table to change, e.g. public.orders); or remove target for an expand/contract plan, whose steps name their own tables',
      },
    ];
  if (!isExpandPlan(plan)) return [];
  return blueGreenOnlyFields
    .filter((f) => given.has(f))
    .map((f) => ({
      path: f,
      message: `only a blue-green plan (with source and target) has ${f}: this plan has neither, so it is an expand/contract plan; remove ${f}, or add source and target`,
    }));
}

/** Problems that need no database: stage order, reads-only consistency. */
export function offlineProblems(plan: PlanFile): {
  problems: StageProblem[];
  stages: ResolvedStage[];
} {
  const problems: StageProblem[] = planKindProblems(plan);
  if (plan.mapping.down === undefined && plan.shift.readsOnly === false)
    problems.push({
      path: 'shift.readsOnly',
      message:
        'writes cannot shift to the new table without mapping.down (new → old), or they would be lost on rollback: add mapping.down (use {} if every source column maps by name) or set shift.readsOnly: true',
    });
  const resolved = resolveStages(plan, plan.verify.sqlChecks);
  problems.push(...resolved.problems);
  return { problems, stages: resolved.stages };
}
