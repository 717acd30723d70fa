/**
 * The blue-green table change as a runbook: walk the plan's stages step by step, record each
 * completed step's undo, and on abort, failure or a breached check run the undos in reverse,
 * out of reach of cancellation. All I/O is in activities; this file only decides what happens
 * next, so it replays deterministically.
 */
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxySinks,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/common';
import type * as activities from '../activities/registry';
import type { CheckConfig } from '../src/monitor/checks';
import type { ResolvedPlan, RunnablePlan } from '../src/plan/resolved';
import { defaultRunSettings, type RunSettings } from '../src/plan/run-settings';
import { longActivity, shortActivity } from '../src/steps/options';
import type { ResolvedStepOf, StepKind } from '../src/steps/schemas';
import type { OptionsContext, StepSpec } from '../src/steps/types';
import { stepSpecs } from '../src/steps/specs';
import { innermostMessage } from '../src/temporal/failure-message';
import { dispatch, type StepHandlers } from './step-handlers';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  pauseSignal,
  progressSignal,
  resumeSignal,
  stageSearchAttribute,
  statusQuery,
  sumProgress,
  throttleProblems,
  throttleSignal,
  throttleUpdate,
  type AbortRequest,
  type ApproveRequest,
  type CheckSummary,
  type CutoverSinks,
  type ProgressReport,
  type RunStatus,
  type SwapBlocker,
  type ThrottleRequest,
} from './definitions';
import { formatDuration, renderDetails } from './details';

export type { RunSettings };
export { defaultRunSettings };

export interface BlueGreenInput {
  /** A blue-green table change, or an expand/contract plan (`kind: 'expand'`, no new table). */
  plan: RunnablePlan;
  settings?: Partial<RunSettings>;
}

export interface BlueGreenResult {
  outcome: 'completed' | 'rolled-back';
  reason?: string;
  /** An abort that arrived after the point of no return (cleanup): recorded, not acted on. */
  abortRefused?: string;
  stepsDone: string[];
  undone: string[];
}

/** Pause / resume / throttle reach the backfill through its control row: a quick call. */
const control = proxyActivities<typeof activities>(shortActivity);

/** The activities, called with the options the step's kind gives (src/steps/<kind>/spec.ts). */
const acts = (options: ActivityOptions) => proxyActivities<typeof activities>(options);

const { cutoverMetrics } = proxySinks<CutoverSinks>();

/**
 * The old table's name after the swap: `<table>_old_<yyyymmddhhmmss>` from the run's start time,
 * so a later change of the same table never collides with this one's archive (and the name says
 * when). Plan table names are plain ASCII identifiers, so characters are bytes: cut the table
 * part to keep within PostgreSQL's 63.
 */
export function archiveTableName(table: string, startedAt: Date): string {
  const stamp = startedAt.toISOString().replace(/[-:T]/g, '').replace(/\..*$/, '');
  const tail = `_old_${stamp}`;
  return table.slice(0, 63 - tail.length) + tail;
}

class RollbackRequested extends Error {
  override name = 'RollbackRequested';
}

interface Undo {
  step: string;
  run: () => Promise<unknown>;
}

export async function blueGreen(input: BlueGreenInput): Promise<BlueGreenResult> {
  const plan = input.plan;
  // Precedence: defaults < the plan's `run:` section < what the operator gave on the command line.
  const settings: RunSettings = {
    ...defaultRunSettings,
    ...input.plan.settings,
    ...input.settings,
  };
  // An expand/contract plan changes the tables its steps name in place: no new table, no sync,
  // no swap. The plan check admits only the kinds that need none (spec `standalone`); `blue()`
  // hands the blue-green plan to the kinds that need it.
  const expand = plan.kind === 'expand' ? plan : undefined;
  const bluePlan: ResolvedPlan | undefined = plan.kind === 'expand' ? undefined : plan;
  const blue = (): ResolvedPlan => {
    if (bluePlan) return bluePlan;
    throw ApplicationFailure.nonRetryable(
      `step ${status.step} needs a blue-green plan (source and target); this is an expand/contract plan`,
      'BadPlan',
    );
  };
  const planName = expand ? expand.name : bluePlan!.change.name;
  const connection = expand ? expand.connection : bluePlan!.change.connection;
  const allSteps = plan.stages.flatMap((s) => s.steps);

  const status: RunStatus = {
    plan: planName,
    table: expand
      ? expand.tables.join(', ')
      : `${bluePlan!.change.source.schema}.${bluePlan!.change.source.table}`,
    ...(expand ? { kind: 'expand' as const } : {}),
    state: 'running',
    stepsDone: [],
    stepsTotal: allSteps.length,
    routePercent: 0,
    waitingGates: [],
    paused: false,
    throttle: {},
    lastChecks: [],
    undone: [],
  };
  /** The run's Web UI page ("current details") shows what the status query returns. */
  const refresh = () => setCurrentDetails(renderDetails(status));
  const undos: Undo[] = [];
  const ctx: OptionsContext = { router: settings.router };
  const approved = new Set<string>();
  let abort: AbortRequest | undefined;
  /** Set when cleanup starts: from then on nothing is undone and an abort is refused. */
  let pastNoReturn = false;
  const useSearchAttributes =
    workflowInfo().typedSearchAttributes.get(stageSearchAttribute) !== undefined;

  // --- messages -------------------------------------------------------------------------
  const pickGate = (req: ApproveRequest): string => {
    if (req.gate) return req.gate;
    if (status.waitingGates.length === 1) return status.waitingGates[0]!;
    throw new Error(
      status.waitingGates.length
        ? `several gates are waiting (${status.waitingGates.join(', ')}): name one`
        : 'no gate is waiting',
    );
  };
  setHandler(approveSignal, (req) => {
    try {
      const gate = pickGate(req);
      if (status.waitingGates.includes(gate)) approved.add(gate);
      else log.warn('approve signal for a gate that is not waiting: ignored', { gate });
    } catch (err) {
      log.warn(`approve signal ignored: ${(err as Error).message}`);
    }
  });
  setHandler(
    approveUpdate,
    (req) => {
      const gate = pickGate(req);
      approved.add(gate);
      return gate;
    },
    {
      validator: (req) => {
        const gate = pickGate(req);
        if (!status.waitingGates.includes(gate)) {
          throw new Error(
            `gate "${gate}" is not waiting${status.waitingGates.length ? ` (waiting: ${status.waitingGates.join(', ')})` : ' (no gate is waiting now)'}`,
          );
        }
      },
    },
  );
  setHandler(abortSignal, (req) => {
    if (pastNoReturn) {
      // The old table no longer follows the new one: rolling back now would lose writes.
      status.abortRefused ??= `abort refused (${req.reason || 'aborted by operator'}): past the point of no return (${status.pointOfNoReturn})`;
      log.warn(status.abortRefused);
      return;
    }
    abort ??= { reason: req.reason || 'aborted by operator', keepShadow: req.keepShadow };
  });
  const sendControl = async (settingsChange: Partial<ThrottleRequest & { paused: boolean }>) => {
    // The backfill reads its control row between batches; set it even when no backfill runs
    // yet, so a pause or throttle given early applies from the first batch.
    await control.backfillControl({ connection, plan: planName, ...settingsChange });
  };
  setHandler(pauseSignal, async () => {
    status.paused = true;
    refresh();
    await sendControl({ paused: true });
  });
  setHandler(resumeSignal, async () => {
    status.paused = false;
    refresh();
    await sendControl({ paused: false });
  });
  const applyThrottle = async (t: ThrottleRequest) => {
    status.throttle = { ...status.throttle, ...t };
    await sendControl(t);
    return status.throttle;
  };
  setHandler(throttleSignal, async (t) => {
    if (throttleProblems(t).length)
      return log.warn('throttle signal ignored', { problems: throttleProblems(t) });
    await applyThrottle(t);
  });
  setHandler(throttleUpdate, applyThrottle, {
    validator: (t) => {
      const problems = throttleProblems(t);
      if (problems.length) throw new Error(problems.join('; '));
    },
  });
  setHandler(statusQuery, () => status);
  const progressReports = new Map<string, ProgressReport>();
  let acceptingProgress = false;
  setHandler(progressSignal, (report) => {
    // A report that arrives after its step ended (signals can overtake the activity's result)
    // would show stale progress: only the running step's activities count.
    if (!acceptingProgress) return;
    progressReports.set(report.key, report);
    status.progress = sumProgress([...progressReports.values()]);
    refresh();
  });

  // --- the runbook ------------------------------------------------------------------------
  const setStage = (stage: string) => {
    status.stage = stage;
    log.info(`stage ${stage}`, { plan: planName, stage });
    cutoverMetrics.stage(stage);
    refresh();
    if (useSearchAttributes) upsertSearchAttributes([{ key: stageSearchAttribute, value: stage }]);
  };

  const holdWhilePaused = async () => {
    if (!status.paused) return;
    status.state = 'paused';
    await condition(() => !status.paused);
    status.state = 'running';
  };

  const gate = async (step: ResolvedStepOf<'approval'>) => {
    const name = step.gate ?? step.id;
    if (step.auto || settings.autoApprove === 'all' || settings.autoApprove.includes(name)) return;
    status.waitingGates.push(name);
    status.state = 'waiting';
    refresh();
    const timeoutMs = step.timeoutSeconds ? step.timeoutSeconds * 1000 : undefined;
    const ok = timeoutMs
      ? await condition(() => approved.has(name), timeoutMs)
      : (await condition(() => approved.has(name)), true);
    status.waitingGates = status.waitingGates.filter((g) => g !== name);
    status.state = 'running';
    refresh();
    if (!ok)
      throw new RollbackRequested(
        `approval gate "${name}" was not approved within ${step.timeoutSeconds}s`,
      );
  };

  const runChecks = async (
    step: ResolvedStepOf<'monitor'>,
    stepChecks: CheckConfig[],
  ): Promise<CheckSummary[]> => {
    const all = [...settings.monitorChecks, ...stepChecks];
    if (!all.length) return [];
    const results = await runOf('monitor', step).monitorChecks.executeWithOptions(
      { summary: `checks at route ${status.routePercent}%` },
      [all],
    );
    status.lastChecks = results.map((r) => ({
      name: r.name,
      ok: r.ok,
      detail: r.detail,
      at: r.at,
    }));
    cutoverMetrics.checks(status.lastChecks);
    refresh();
    return status.lastChecks;
  };

  /** A timed window: checks every interval until it ends; a breach rolls back or pauses. */
  const monitorWindow = async (step: ResolvedStepOf<'monitor'>) => {
    const seconds = step.seconds;
    const stepChecks: CheckConfig[] = step.checks ?? [];
    const endsAt = Date.now() + seconds * 1000;
    status.windowEndsAt = new Date(endsAt).toISOString();
    refresh();
    const summary = `monitor ${status.routePercent}% for ${formatDuration(seconds)}`;
    try {
      if (!settings.monitorChecks.length && !stepChecks.length) {
        // Nothing to check: one durable timer, not one per interval, keeps the history short.
        await sleep(seconds * 1000, { summary });
        return;
      }
      for (;;) {
        const failed = (await runChecks(step, stepChecks)).filter((c) => !c.ok);
        if (failed.length) {
          const what = failed.map((c) => `${c.name}: ${c.detail}`).join('; ');
          if (settings.onBreach === 'rollback')
            throw new RollbackRequested(`check failed during monitoring: ${what}`);
          log.warn('check failed during monitoring; pausing for a human', { what });
          status.paused = true;
          await holdWhilePaused();
        }
        const left = endsAt - Date.now();
        if (left <= 0) return;
        await sleep(Math.min(left, settings.checkIntervalSeconds * 1000), { summary });
      }
    } finally {
      status.windowEndsAt = undefined;
    }
  };

  /**
   * Keys the sync triggers could not copy exactly (SERIALIZABLE writers, hot keys written
   * through both tables) are settled after each route change and after each monitoring
   * window: periodic while traffic is routed, with a history that grows per step, not per
   * interval. Verification and the final drop of the sync drain as well.
   */
  const drainSyncDebt = async () => {
    // No sync without a new table (an expand/contract plan's monitoring windows).
    if (bluePlan && patched('sync-debt-drain'))
      await control.syncDrain({ change: bluePlan.change });
  };

  /**
   * Runs a long activity (backfill, verify) with its progress reports shown in the status and
   * the Web UI details while it runs; the reports stop mattering when it ends.
   */
  const withLiveProgress = async <T>(work: Promise<T>): Promise<T> => {
    progressReports.clear();
    acceptingProgress = true;
    try {
      return await work;
    } finally {
      acceptingProgress = false;
      progressReports.clear();
      status.progress = undefined;
    }
  };

  const backfill = async (step: ResolvedStepOf<'backfill'>) => {
    const plan = blue();
    const change = plan.change;
    const parts = plan.backfill.parallelRanges ?? 1;
    const a = plan.backfill.adaptive;
    const throttle = {
      batchSize: plan.backfill.batchSize,
      sleepMs: plan.backfill.pauseMs,
      adaptive: a.enabled,
      targetBatchMs: a.targetBatchMs,
      minBatchSize: a.minBatchSize,
      maxSleepMs: a.maxPauseMs,
    };
    const summary = `backfill ${status.table} → ${change.target.schema}.${change.target.table}`;
    const loadBudget = plan.backfill.loadBudget;
    if (parts <= 1) {
      const progress = await runOf('backfill', step).backfillRun.executeWithOptions({ summary }, [
        { change, throttle, loadBudget },
      ]);
      status.rowsCopied = progress.rowsDone;
      return;
    }
    const ranges = await acts(stepSpecs.backfill.splitOptions).backfillSplitRanges({
      change,
      parts,
    });
    const run = runOf('backfill', step);
    const results = await Promise.all(
      ranges.map((r, i) =>
        run.backfillRun.executeWithOptions({ summary: `${summary} (range ${i + 1}/${parts})` }, [
          { change, range: r.range, throttle, loadBudget },
        ]),
      ),
    );
    status.rowsCopied = results.reduce((n, p) => n + p.rowsDone, 0);
    // A range does not settle the sync debt itself (another range's batch may still be in
    // flight); with every range done, no copy can land after this drain.
    if (patched('drain-after-ranges')) await control.syncDrain({ change });
  };

  // One handler per step kind. The type demands an entry for every kind in the registry
  // (src/steps/schemas.ts), so a kind added there without a handler here fails to compile.
  const specOf = <K extends StepKind>(kind: K) =>
    stepSpecs[kind] as unknown as StepSpec<ResolvedStepOf<K>>;
  const runOf = <K extends StepKind>(kind: K, step: ResolvedStepOf<K>) =>
    acts(specOf(kind).options!(step, ctx));
  const undoOf = <K extends StepKind>(kind: K, step: ResolvedStepOf<K>) =>
    acts(specOf(kind).undoOptions!(step, ctx));

  /** An expand step's activity input: the plan's connection name and the resolved step. */
  const stepInput = <S>(step: S) => ({ connection, plan: planName, step });
  /** One line of what a step did, for the status and the Web UI. */
  const result = (step: string, text: string) => {
    status.results = { ...status.results, [step]: text };
    refresh();
  };

  const defaultArchive = () =>
    archiveTableName(blue().change.source.table, workflowInfo().startTime);

  const routeTarget = () => ({ connection, migration: planName, router: settings.router });
  const externalRouter = () => settings.router !== undefined && settings.router.kind !== 'postgres';
  /** A route step's shape, for its activity options (they depend on the router only). */
  const routeStep = (id: string, percent: number): ResolvedStepOf<'route'> => ({
    kind: 'route',
    id,
    percent,
  });

  const describeBlockers = (reason: string, blockers: SwapBlocker[]): string => {
    if (!blockers.length)
      return reason === 'blocked' ? 'a transaction on the tables' : 'lock not granted in time';
    const b = blockers[0]!;
    return `${reason === 'blocked' ? 'waiting for' : 'lock timeout behind'} pid ${b.pid} (transaction open ${b.ageSeconds}s, ${b.waiting ? 'itself waiting for a lock' : b.state}): ${b.query}`;
  };

  /** Waits between attempts: growing, jittered (Math.random is deterministic in workflows). */
  const swapPause = (attempt: number) => {
    const base = Math.min(500 * 2 ** Math.min(attempt - 1, 6), 5000);
    return Math.round(base / 2 + Math.random() * (base / 2));
  };

  /**
   * The finish: a swap (the new table takes the original name) or, for a plan whose point is the
   * new name, a rename (the new table keeps its name, the old name is a view over it until
   * cleanup). Same waiting, same undo shape; only the attempt activities differ.
   */
  const swap = async (
    step: ResolvedStepOf<'swap'> | ResolvedStepOf<'rename'>,
    mode: 'swap' | 'rename' = 'swap',
  ) => {
    const plan = blue();
    const change = plan.change;
    const archive = step.archive ?? defaultArchive();
    const input = {
      change,
      archive,
      lockTimeoutMs: step.lockTimeoutMs,
      directions: plan.readsOnly ? ('forward' as const) : ('both' as const),
      // Only a rename says so: the swap's input stays as recorded histories have it.
      ...(mode === 'rename' ? { mode } : {}),
    };
    const attempt = (i: typeof input) =>
      mode === 'rename'
        ? runOf('rename', step as ResolvedStepOf<'rename'>).renameAttempt(i)
        : runOf('swap', step as ResolvedStepOf<'swap'>).swapAttempt(i);
    const attemptBack = (i: typeof input) =>
      mode === 'rename'
        ? undoOf('rename', step as ResolvedStepOf<'rename'>).renameBackAttempt(i)
        : undoOf('swap', step as ResolvedStepOf<'swap'>).swapBackAttempt(i);
    const reversible = change.down !== undefined;
    let toldRouter = false;
    const current = (status.swap = {
      state: 'waiting' as const,
      archive,
      attempts: 0,
      reversible,
      ...(mode === 'rename' ? { mode } : {}),
    });
    await runOf('swap', step as ResolvedStepOf<'swap'>).swapPrepare(input);
    const percentBefore = status.routePercent;
    if (reversible)
      // Pushed before the first attempt: the swap-back reads the database's record, so an abort
      // that crosses a committing attempt still finds and undoes it.
      undos.push({
        step: step.id,
        run: async () => {
          status.swap = { ...status.swap!, state: 'swapping-back' };
          let swappedBack = false;
          for (let attempt = 1; ; attempt++) {
            const r = await attemptBack(input);
            if (r.done) {
              swappedBack = r.swappedBack;
              break;
            }
            status.swap.waitingFor = describeBlockers(r.reason, r.blockers);
            status.swap.blockers = r.blockers;
            await sleep(swapPause(attempt));
          }
          status.swap = {
            ...status.swap,
            // The database's record decides: an attempt that never committed left nothing to undo.
            state: swappedBack ? 'swapped-back' : 'not-swapped',
            waitingFor: undefined,
            blockers: [],
          };
          // The rename-back put the route row back where it was before the rename.
          if (mode === 'rename' && swappedBack) status.routePercent = percentBefore;
          // A router told about the finish hears the way back; with route steps their own undo
          // (which runs next) tells it.
          if (toldRouter && !undos.some((u) => u.step === 'route'))
            await undoOf('route', routeStep(step.id, 0)).routeUndo.executeWithOptions(
              { summary: 'route back to 0%' },
              [routeTarget()],
            );
          await acts(stepSpecs.swap.validateKeysUndoOptions).swapValidateKeys(input);
        },
      });
    const giveUpAt = Date.now() + step.maxWaitSeconds * 1000;
    for (let i = 1; ; i++) {
      current.attempts = i;
      // The last attempt's blocker stays shown while the next one runs: what the status says
      // is always the latest thing the swap found, never a blank between two attempts.
      status.swap = { ...status.swap, ...current };
      const r = await attempt(input);
      if (r.done) break;
      status.swap.waitingFor = describeBlockers(r.reason, r.blockers);
      status.swap.blockers = r.blockers;
      setCurrentDetails(`**${change.name}**: swap waiting: ${status.swap.waitingFor}`);
      if (Date.now() >= giveUpAt)
        throw ApplicationFailure.nonRetryable(
          `${mode} gave up after ${step.maxWaitSeconds}s (${i} attempts; nothing was changed): ${status.swap.waitingFor}`,
          'SwapTimedOut',
        );
      await sleep(swapPause(i));
    }
    status.swap = {
      state: 'swapped',
      archive,
      attempts: current.attempts,
      reversible,
      swappedAt: new Date().toISOString(),
      ...(mode === 'rename' ? { mode } : {}),
    };
    // A rename routes every key to the new table in its transaction (routers follow the row).
    if (mode === 'rename') status.routePercent = 100;
    // A webhook or command router is told after the commit, never inside the finish's
    // transaction (its locks are bounded by lock_timeout; an HTTP call or a command is not):
    // the same call as a route step, with the route row's percent and its swapped flag. A
    // router that refuses fails the step, and the rollback swaps (or renames) back.
    if (externalRouter() && patched('finish-tells-routers')) {
      toldRouter = true;
      await runOf('route', routeStep(step.id, status.routePercent)).routeSet.executeWithOptions(
        { summary: `tell the router: ${mode === 'rename' ? 'renamed' : 'swapped'}` },
        [{ ...routeTarget(), percent: status.routePercent }],
      );
    }
    if (!reversible) {
      // No down mapping: the archive does not follow the new table, so there is no way back.
      pastNoReturn = true;
      status.pointOfNoReturn = `${mode} ${step.id} (the plan has no down mapping)`;
      undos.length = 0;
    }
    await acts(stepSpecs.swap.validateKeysOptions).swapValidateKeys(input);
  };

  const handlers: StepHandlers = {
    backup: async (step) => {
      await runOf('backup', step).backupRun({
        connection,
        // An expand/contract plan backs up every table its steps change.
        tables: expand ? expand.tables : [status.table],
        label: planName,
      });
    },
    shadow: async (step) => {
      const plan = blue();
      await runOf('shadow', step).shadowRun(plan);
      undos.push({
        step: step.id,
        // Kept on request, so an operator can inspect what was copied.
        run: async () =>
          (abort?.keepShadow ?? settings.keepShadowOnAbort)
            ? undefined
            : undoOf('shadow', step).shadowUndo(plan),
      });
    },
    sync: async (step) => {
      const { change, readsOnly } = blue();
      await runOf('sync', step).syncRun({
        change,
        directions: readsOnly ? 'forward' : 'both',
      });
      undos.push({ step: step.id, run: () => undoOf('sync', step).syncUndo({ change }) });
    },
    backfill: async (step) => {
      const { change } = blue();
      undos.push({ step: step.id, run: () => undoOf('backfill', step).backfillUndo({ change }) });
      await withLiveProgress(backfill(step));
      refresh();
    },
    index: async (step) => {
      await runOf('index', step).shadowBuildIndexes(blue());
    },
    verify: async (step) => {
      const plan = blue();
      const change = plan.change;
      const parts = plan.backfill.parallelRanges ?? 1;
      const loadBudget = plan.backfill.loadBudget;
      const run = runOf('verify', step);
      const summary = `verify ${status.table} = ${change.target.schema}.${change.target.table}`;
      // Runs started before range-parallel verification scheduled one activity here.
      if (parts <= 1 || !patched('verify-key-ranges')) {
        await withLiveProgress(
          run.verify.executeWithOptions({ summary }, [{ change, verify: plan.verify, loadBudget }]),
        );
        return;
      }
      const ranges = await acts(stepSpecs.backfill.splitOptions).backfillSplitRanges({
        change,
        parts,
      });
      await withLiveProgress(
        Promise.all(
          ranges.map((r, i) =>
            run.verify.executeWithOptions({ summary: `${summary} (range ${i + 1}/${parts})` }, [
              { change, verify: plan.verify, loadBudget, keyRange: r.range },
            ]),
          ),
        ),
      );
    },
    sqlcheck: async (step) => {
      await runOf('sqlcheck', step).sqlcheck({ change: blue().change, checks: step.checks ?? [] });
    },
    approval: (step) => gate(step),
    route: async (step) => {
      const target = routeTarget();
      if (!undos.some((u) => u.step === 'route'))
        undos.push({
          step: 'route',
          run: async () => {
            await undoOf('route', step).routeUndo.executeWithOptions(
              { summary: 'route back to 0%' },
              [target],
            );
            await sleep(settings.routeDrainSeconds * 1000, {
              summary: `drain route ${formatDuration(settings.routeDrainSeconds)}`,
            });
          },
        });
      await runOf('route', step).routeSet.executeWithOptions(
        { summary: `route ${step.percent}%` },
        [{ ...target, percent: step.percent }],
      );
      status.routePercent = step.percent;
      cutoverMetrics.routePercent(step.percent);
      await drainSyncDebt();
    },
    monitor: async (step) => {
      await monitorWindow(step);
      await drainSyncDebt();
    },
    hook: async (step) => {
      await runOf('hook', step).hookRun(step.hook);
      undos.push({ step: step.id, run: () => undoOf('hook', step).hookUndo(step.hook) });
    },
    // Expand/contract steps: the undo is pushed before the run, since it acts only on what the
    // step's ledger row says this run changed; so an attempt that changed the table and then
    // died (or was cancelled by an abort) is still undone.
    addColumn: async (step) => {
      const input = stepInput(step);
      undos.push({ step: step.id, run: () => undoOf('addColumn', step).addColumnUndo(input) });
      await withLiveProgress(
        runOf('addColumn', step).addColumnRun.executeWithOptions(
          { summary: `add column ${step.table}.${step.column}` },
          [input],
        ),
      );
    },
    backfillColumn: async (step) => {
      const done = await withLiveProgress(
        runOf('backfillColumn', step).backfillColumnRun.executeWithOptions(
          { summary: `backfill ${step.table}.${step.column}` },
          [{ ...stepInput(step), loadBudget: plan.backfill.loadBudget }],
        ),
      );
      result(step.id, `${done.rowsUpdated} of ${done.rowsScanned} rows updated`);
    },
    setNotNull: async (step) => {
      const input = stepInput(step);
      undos.push({ step: step.id, run: () => undoOf('setNotNull', step).setNotNullUndo(input) });
      await withLiveProgress(
        runOf('setNotNull', step).setNotNullRun.executeWithOptions(
          { summary: `set ${step.table}.${step.column} NOT NULL` },
          [input],
        ),
      );
    },
    createIndex: async (step) => {
      const input = stepInput(step);
      undos.push({ step: step.id, run: () => undoOf('createIndex', step).createIndexUndo(input) });
      await withLiveProgress(
        runOf('createIndex', step).createIndexRun.executeWithOptions(
          { summary: `create index ${step.index} on ${step.table}` },
          [input],
        ),
      );
    },
    addConstraint: async (step) => {
      const input = stepInput(step);
      undos.push({
        step: step.id,
        run: () => undoOf('addConstraint', step).addConstraintUndo(input),
      });
      await withLiveProgress(
        runOf('addConstraint', step).addConstraintRun.executeWithOptions(
          { summary: `add constraint ${step.constraint} on ${step.table}` },
          [input],
        ),
      );
    },
    batchMigrate: async (step) => {
      const input = stepInput(step);
      undos.push({
        step: step.id,
        run: () => undoOf('batchMigrate', step).batchMigrateUndo(input),
      });
      const r = await withLiveProgress(
        runOf('batchMigrate', step).batchMigrateRun.executeWithOptions(
          { summary: `batch migration ${step.migration}${step.dryRun ? ' (dry run)' : ''}` },
          [input],
        ),
      );
      result(
        step.id,
        r.dryRun
          ? `dry run: ${r.itemsDone} items, ${r.failures.length} would fail${r.failures.length ? ` (first: key ${r.failures[0]!.key}: ${r.failures[0]!.error})` : ''}; nothing changed`
          : `${r.itemsDone} items, ${r.deadLetters} dead letters` +
              (r.verification
                ? `; verified: source ${r.verification.sourceRows}, destination ${r.verification.targetRows}, differing ${r.verification.differing}`
                : ''),
      );
    },
    deprecate: async (step) => {
      const input = stepInput(step);
      undos.push({ step: step.id, run: () => undoOf('deprecate', step).deprecateUndo(input) });
      await runOf('deprecate', step).deprecateRun(input);
    },
    drop: async (step) => {
      const input = stepInput(step);
      const object = `${step.table}${step.column !== undefined ? `.${step.column}` : ''}`;
      const check = () =>
        runOf('drop', step).dropCheck.executeWithOptions({ summary: `may ${object} go?` }, [input]);
      const first = await check();
      if (!first.gone) {
        if (!first.deprecatedAt)
          throw ApplicationFailure.nonRetryable(
            `${object} was never deprecated: add a deprecate step, deploy code that no longer uses it, then drop it`,
            'NotDeprecated',
          );
        // The deprecation period is a durable timer: code that still reads the object has that
        // long to be deployed away.
        const left =
          new Date(first.deprecatedAt).getTime() + step.minDeprecatedSeconds * 1000 - Date.now();
        if (left > 0) {
          status.windowEndsAt = new Date(Date.now() + left).toISOString();
          refresh();
          await sleep(left, { summary: `deprecation period of ${object}` });
          status.windowEndsAt = undefined;
        }
        const facts = await check();
        if (facts.readers?.length)
          throw ApplicationFailure.nonRetryable(
            `${object} is still read (pg_stat_statements): ${facts.readers.join(' | ')}`,
            'StillRead',
          );
        // No pg_stat_statements: a person confirms that nothing reads it any more.
        if (!facts.gone && facts.readers === null && !step.confirmedUnused)
          await gate({
            kind: 'approval',
            id: step.id,
            gate: step.gate,
            auto: step.auto,
            ...(step.timeoutSeconds !== undefined ? { timeoutSeconds: step.timeoutSeconds } : {}),
          });
      }
      // The point of no return (stepSpecs.drop.undo): the data is gone; nothing earlier is undone.
      pastNoReturn = true;
      status.pointOfNoReturn = `drop of ${object} (step ${step.id})`;
      undos.length = 0;
      await CancellationScope.nonCancellable(() =>
        runOf('drop', step).dropRun.executeWithOptions({ summary: `drop ${object}` }, [
          { ...input, confirmed: true },
        ]),
      );
    },
    swap: (step) => swap(step),
    rename: (step) => swap(step, 'rename'),
    cleanup: async (step) => {
      if (
        settings.rollbackWindowSeconds > 0 &&
        (status.routePercent > 0 || status.swap?.state === 'swapped')
      ) {
        // Reverse sync stays on: a late problem can still roll back with nothing lost.
        status.windowEndsAt = new Date(
          Date.now() + settings.rollbackWindowSeconds * 1000,
        ).toISOString();
        refresh();
        await sleep(settings.rollbackWindowSeconds * 1000, {
          summary: `rollback window ${formatDuration(settings.rollbackWindowSeconds)}`,
        });
        status.windowEndsAt = undefined;
      }
      if (abort) throw new RollbackRequested(`aborted: ${abort.reason}`);
      // The point of no return (stepSpecs.cleanup.undo): from here on the old table is no
      // longer kept in sync, so nothing is undone any more and an abort is refused (and says so).
      pastNoReturn = true;
      status.pointOfNoReturn = `cleanup of step ${step.id}`;
      undos.length = 0;
      const archive = status.swap?.archive ?? defaultArchive();
      const plan = blue();
      await CancellationScope.nonCancellable(() =>
        runOf('cleanup', step).cleanupRun.executeWithOptions(
          { summary: 'cleanup: stop reverse sync (point of no return)' },
          [{ plan, oldTable: step.oldTable, archive }],
        ),
      );
      if (status.swap) status.swap.state = 'finished';
      if (step.oldTable === 'drop' && step.retentionHours > 0) {
        status.windowEndsAt = new Date(Date.now() + step.retentionHours * 3_600_000).toISOString();
        refresh();
        await sleep(step.retentionHours * 3_600_000, {
          summary: `keep archive ${formatDuration(step.retentionHours * 3600)}`,
        });
        status.windowEndsAt = undefined;
      }
      if (step.oldTable === 'drop')
        await runOf('cleanup', step).cleanupDropArchive({ plan, archive });
    },
  };

  const runbook = async () => {
    // Runs started before the pre-flight existed go on without it (their history has no marker).
    // An expand/contract plan has no mapping to prove: each step proves its own pre-flight on
    // the live rows before its first statement.
    if (bluePlan && patched('preflight-before-first-write')) {
      status.step = 'preflight';
      setCurrentDetails(`**${planName}**: pre-flight: checking that every row maps`);
      await acts(longActivity).preflight(bluePlan);
    }
    for (const stage of plan.stages) {
      setStage(stage.name);
      for (const step of stage.steps) {
        await holdWhilePaused();
        status.step = step.id;
        refresh();
        await dispatch(handlers, step);
        status.stepsDone.push(step.id);
      }
    }
  };

  // --- run, and roll back on abort / failure / breach -------------------------------------
  const scope = new CancellationScope();
  const running = scope.run(runbook);
  let failure: unknown;
  let reason: string | undefined;
  try {
    await Promise.race([running, condition(() => abort !== undefined)]);
    if (abort && pastNoReturn) {
      // It came in together with the start of cleanup: too late to act on, so it is recorded.
      status.abortRefused ??= `abort refused (${abort.reason}): past the point of no return (${status.pointOfNoReturn})`;
      await running;
    } else if (abort) {
      scope.cancel();
      await running.catch(() => {});
      reason = `aborted: ${abort.reason}`;
    }
  } catch (err) {
    if (err instanceof RollbackRequested) reason = err.message;
    else if (abort && isCancellation(err)) reason = `aborted: ${abort.reason}`;
    else if (
      isCancellation(err) &&
      CancellationScope.current().consideredCancelled &&
      patched('cancellation-is-abort')
    ) {
      // "Request Cancellation" in the Web UI (or `temporal workflow cancel`) does what an abort
      // does: roll back every completed step, losing nothing.
      abort = { reason: 'workflow cancellation requested (Web UI or `temporal workflow cancel`)' };
      reason = `aborted: ${abort.reason}`;
    } else {
      failure = err;
      reason = `step ${status.step} failed: ${describe(err)}`;
    }
  }

  // A cancelled workflow still finishes its bookkeeping: waiting for handlers must not throw.
  const handlersFinished = () =>
    CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  if (reason === undefined) {
    status.state = 'completed';
    status.step = undefined;
    setStage('done');
    await handlersFinished();
    return {
      outcome: 'completed',
      stepsDone: status.stepsDone,
      undone: [],
      ...(status.abortRefused ? { abortRefused: status.abortRefused } : {}),
    };
  }

  status.state = 'rolling-back';
  status.abortReason = reason;
  // The cause (with the offending key, for data errors) is visible while the undos run.
  if (failure) status.error = describe(failure);
  // A gate interrupted by an abort never reaches its own cleanup; a closed run waits for nothing.
  // Query-only state, so no patched() is needed: replays issue the same commands.
  status.waitingGates = [];
  status.progress = undefined;
  setStage('rolling-back');
  log.warn('rolling back', { reason });
  await CancellationScope.nonCancellable(async () => {
    for (const undo of [...undos].reverse()) {
      await undo.run();
      status.undone.push(undo.step);
      refresh();
      if (undo.step === 'route') {
        status.routePercent = 0;
        cutoverMetrics.routePercent(0);
      }
    }
  });
  status.state = failure ? 'failed' : 'rolled-back';
  status.step = undefined;
  // Past the point of no return nothing was undone: say so rather than "rolled back".
  setStage(pastNoReturn ? 'failed-after-point-of-no-return' : 'rolled-back');
  await handlersFinished();
  if (failure) {
    throw ApplicationFailure.nonRetryable(
      `${reason}; rolled back: ${status.undone.join(', ') || 'nothing to undo'}`,
      'StepFailed',
    );
  }
  return { outcome: 'rolled-back', reason, stepsDone: status.stepsDone, undone: status.undone };
}

const describe = innermostMessage;
