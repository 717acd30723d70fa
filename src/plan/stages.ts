/**
 * The stage list as data: the workflow walks it step by step. Defaults follow DESIGN.md —
 * prepare → validate → approval → shift → swap → approval → cleanup — and a plan may replace them with
 * its own `stages` (e.g. to add hooks). Every step gets a unique `id` for status and signals.
 */
import type { HookConfig } from '../../activities/hook';
import type { PlanFile, PlanMonitorCheck, PlanStage, PlanStep, SqlCheck } from './schema';

type PlanHookStep = Extract<PlanStep, { kind: 'hook' }>;

/**
 * A hook step as the workflow receives it: `hook` is exactly the config of the hookRun and
 * hookUndo activities (activities/hook.ts): the plan's `run` action with its `undo` inside.
 */
export interface ResolvedHookStep {
  kind: 'hook';
  id: string;
  name?: string;
  hook: HookConfig;
}

/**
 * One step as the workflow receives it: the plan's step plus a unique id and defaults filled in
 * (approval: gate and auto; sqlcheck: its checks; monitor: every sql check's connection).
 */
export type ResolvedStep = (Exclude<PlanStep, PlanHookStep> & { id: string }) | ResolvedHookStep;

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
    { name: 'shift', steps: shift },
    { name: 'swap', steps: [{ kind: 'swap', lockTimeoutMs: 1000, maxWaitSeconds: 600 }] },
    { name: 'approve-cleanup', steps: [{ kind: 'approval', gate: 'cleanup', auto: false }] },
    { name: 'cleanup', steps: [{ kind: 'cleanup', oldTable: 'archive', retentionHours: 168 }] },
  ];
}

export interface StageProblem {
  path: string;
  message: string;
}

/** An sql monitoring check without a connection queries the plan's own database. */
export function withConnection(check: PlanMonitorCheck, connection: string): PlanMonitorCheck {
  return check.kind === 'sql' && check.connection === undefined ? { ...check, connection } : check;
}

function resolveHook(step: PlanHookStep, id: string): ResolvedHookStep {
  return {
    kind: 'hook',
    id,
    ...(step.name !== undefined ? { name: step.name } : {}),
    hook: { ...step.run, ...(step.undo ? { undo: step.undo } : {}) },
  };
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
  const given = plan.stages ?? defaultStages(plan);
  const problems: StageProblem[] = [];
  const seenStage = new Set<string>();
  const ids = new Set<string>();
  const firstAt = new Map<string, number>();
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
      if (!firstAt.has(step.kind)) firstAt.set(step.kind, position);
      else if (
        ['backup', 'shadow', 'sync', 'backfill', 'index', 'swap', 'cleanup'].includes(step.kind)
      )
        problems.push({
          path: `stages[${si}].steps[${i}].kind`,
          message: `step kind "${step.kind}" appears twice: a plan runs it once`,
        });
      position++;
      if (step.kind === 'approval') {
        const gate = step.gate ?? step.name ?? stage.name;
        gates.add(gate);
        return { ...step, id, gate, auto: step.auto || autoGate(gate) };
      }
      if (step.kind === 'sqlcheck') return { ...step, id, checks: step.checks ?? checks };
      if (step.kind === 'monitor' && step.checks)
        return { ...step, id, checks: step.checks.map((c) => withConnection(c, plan.connection)) };
      if (step.kind === 'hook') return resolveHook(step, id);
      return { ...step, id };
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
  const mustPrecede = (before: string, after: string, why: string) => {
    const a = at(before);
    const b = at(after);
    if (b !== undefined && (a === undefined || a > b))
      problems.push({
        path: 'stages',
        message: `a "${before}" step must come before "${after}": ${why}`,
      });
  };
  for (const k of ['shadow', 'sync', 'backfill'])
    if (at(k) === undefined)
      problems.push({
        path: 'stages',
        message: `a "${k}" step is required: the new table cannot be filled without it`,
      });
  mustPrecede('shadow', 'sync', 'the triggers write into the new table');
  mustPrecede('sync', 'backfill', 'writes during the copy would otherwise be missed');
  mustPrecede('backfill', 'index', 'secondary indexes are built after the copy');
  mustPrecede('backfill', 'verify', 'verification compares the filled tables');
  mustPrecede('verify', 'route', 'traffic moves only to a verified table');
  mustPrecede('verify', 'swap', 'the new table takes the name only once verified');
  const swapAt = at('swap');
  const routeAfterSwap = given
    .flatMap((s) => s.steps)
    .slice((swapAt ?? Infinity) + 1)
    .some((s) => s.kind === 'route');
  if (routeAfterSwap)
    problems.push({
      path: 'stages',
      message:
        'a "route" step after the "swap": once swapped, the original name holds the new table, so routing means nothing; move the route steps before the swap',
    });
  const cleanupAt = at('cleanup');
  if (swapAt !== undefined && cleanupAt !== undefined && cleanupAt < swapAt)
    problems.push({
      path: 'stages',
      message:
        'the "cleanup" step must come after the "swap": cleanup ends the swap’s rollback window',
    });
  return { stages, problems };
}

/** Problems that need no database: stage order, reads-only consistency. */
export function offlineProblems(plan: PlanFile): {
  problems: StageProblem[];
  stages: ResolvedStage[];
} {
  const problems: StageProblem[] = [];
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
