import type { Client } from '@temporalio/client';
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { UsageError, UserError } from '../../errors';
import type { RunSettings } from '../../plan/run-settings';
import { parseDuration, parsePositiveInt } from '../options';
import { renderReport } from '../render-status';
import { action } from '../run';
import { maskSecrets } from '../../safe-text';
import { registerDeploySubcommands } from './deploy';

// Loaded by the commands that talk to Temporal, so `--help` and other commands start without
// the Temporal client and its gRPC stack.
const runsLib = () => import('../../temporal/runs');

const TEMPORAL_HELP = `
Temporal: TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default "default"),
TEMPORAL_TLS_CERT / TEMPORAL_TLS_KEY / TEMPORAL_TLS_CA (mTLS), TEMPORAL_API_KEY (Temporal Cloud),
TEMPORAL_UI_URL (for printed links, default http://localhost:8233).`;

export async function withClient<T>(
  work: (client: Client, namespace: string) => Promise<T>,
): Promise<T> {
  const [{ Client }, { connectClient, temporalSettings }] = await Promise.all([
    import('@temporalio/client'),
    import('../../temporal/connection'),
  ]);
  const settings = temporalSettings();
  const connection = await connectClient(settings);
  try {
    return await work(
      new Client({ connection, namespace: settings.namespace }),
      settings.namespace,
    );
  } finally {
    await connection.close();
  }
}

/** `cutover status <run>`: the status command (registered with the migrations) delegates here. */
export async function showRun(
  run: string,
  o: { watch?: boolean; json?: boolean; interval?: number },
): Promise<void> {
  if (o.watch) return watch(run, o.interval ?? 1000, Boolean(o.json));
  const { runReport } = await runsLib();
  await withClient(async (client) => {
    const report = await runReport(client, run);
    console.log(maskSecrets(o.json ? JSON.stringify(report, null, 2) : renderReport(report)));
  });
}

async function watch(idOrPlan: string, intervalMs: number, json: boolean): Promise<void> {
  const { runReport } = await runsLib();
  await withClient(async (client) => {
    const tty = process.stdout.isTTY && !json;
    let lastLines = 0;
    let lastText = '';
    for (;;) {
      const report = await runReport(client, idOrPlan);
      const text = maskSecrets(json ? JSON.stringify(report) : renderReport(report));
      // Off a terminal (logs, CI) print only what changed, not the same block every second.
      if (!tty && text === lastText && report.runStatus === 'RUNNING') {
        await new Promise((r) => setTimeout(r, intervalMs));
        continue;
      }
      lastText = text;
      if (tty && lastLines) process.stdout.write(`\x1b[${lastLines}F\x1b[J`);
      process.stdout.write(`${text}\n`);
      lastLines = text.split('\n').length;
      if (report.runStatus !== 'RUNNING') {
        if (report.runStatus !== 'COMPLETED') process.exitCode = 1;
        return;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  });
}

export function register(program: Command): void {
  program
    .command('start')
    .summary('start a blue-green table change from a plan file')
    .description(
      'Checks the plan against its database (nothing changes if it fails), then starts the\n' +
        'workflow with id cutover-<plan name>. A second start of the same plan is refused while\n' +
        'one is open. Prints the Web UI link.',
    )
    .argument('<plan>', 'plan file (YAML), see plans/')
    .option(
      '--auto-approve <gates>',
      'approve these gates without a human: a comma list (e.g. shift) or "all"',
    )
    .addOption(
      new Option('--rollback-window <duration>', 'keep reverse sync on after 100% before cleanup')
        .default(86_400_000, '1d')
        .argParser(parseDuration),
    )
    .addOption(
      new Option('--check-interval <duration>', 'time between checks in monitoring windows')
        .default(30_000, '30s')
        .argParser(parseDuration),
    )
    .addOption(
      new Option('--on-breach <action>', 'what a failed check does')
        .choices(['rollback', 'pause'])
        .default('rollback'),
    )
    .option('--keep-shadow-on-abort', 'keep the new table for inspection when the run rolls back')
    .option('--watch', 'follow the run until it ends')
    .addHelpText(
      'after',
      `\nExamples:\n  $ cutover start plans/widen-orders-id.yaml\n  $ cutover start plans/split-name.yaml --auto-approve shift --rollback-window 2h --watch\n${TEMPORAL_HELP}`,
    )
    .action(
      action(
        async (
          file: string,
          o: {
            autoApprove?: string;
            rollbackWindow: number;
            checkInterval: number;
            onBreach: 'rollback' | 'pause';
            keepShadowOnAbort?: boolean;
            watch?: boolean;
          },
          cmd: Command,
        ) => {
          const [{ loadPlanFile }, { assertNoOpenRun, preparePlan, startRun, uiUrl }] =
            await Promise.all([import('../../plan'), runsLib()]);
          const planFile = await loadPlanFile(file);
          await withClient((client) => assertNoOpenRun(client, planFile.name));
          const plan = await preparePlan(file);
          // Only flags the operator typed override the plan's `run:` section; commander's
          // defaults are for plans that say nothing (the workflow has the same defaults).
          const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
          const settings: Partial<RunSettings> = {};
          if (o.autoApprove !== undefined) {
            settings.autoApprove =
              o.autoApprove === 'all'
                ? 'all'
                : o.autoApprove
                    .split(',')
                    .map((g) => g.trim())
                    .filter(Boolean);
          }
          if (given('rollbackWindow'))
            settings.rollbackWindowSeconds = Math.round(o.rollbackWindow / 1000);
          if (given('checkInterval'))
            settings.checkIntervalSeconds = Math.max(1, Math.round(o.checkInterval / 1000));
          if (given('onBreach')) settings.onBreach = o.onBreach;
          if (o.keepShadowOnAbort) settings.keepShadowOnAbort = true;
          await withClient(async (client, namespace) => {
            const handle = await startRun(client, plan, { settings, namespace });
            console.log(
              `started ${handle.workflowId}\n  Web UI: ${uiUrl(namespace, handle.workflowId)}\n  follow: cutover status ${planFile.name} --watch`,
            );
          });
          if (o.watch) await watch(planFile.name, 1000, false);
        },
      ),
    );

  const deploy = program
    .command('deploy')
    .summary('apply versioned migrations as a durable Temporal workflow')
    .description(
      'Runs the deploy runbook on the workers: optional backup → dry run (the safety lint runs first)\n' +
        '→ optional approval (gate "apply") → apply → post-checks. A failed apply or post-check rolls\n' +
        'back what this run applied with the down scripts. The migrations directory is read on the\n' +
        'workers; the connection is a name resolved there (DATABASE_URL, CUTOVER_DB_<NAME>_URL).',
    )
    .option('-d, --dir <path>', 'migrations directory on the workers', 'migrations')
    .option('-c, --connection <name>', 'named connection', 'default')
    .addOption(new Option('--to <version>', 'apply up to this version').argParser(parsePositiveInt))
    .option(
      '--require-approval',
      'wait for `cutover approve cutover-deploy-<connection> apply` after the dry run',
    )
    .option('--allow-unsafe', 'apply even when the safety lint reports errors')
    .option('--backup-table <table...>', 'pg_dump these tables before anything changes')
    .option(
      '--post-check-url <url>',
      'health URL that must answer 2xx after the apply, or the deploy rolls back',
    )
    .option('--no-wait', 'print the workflow id and return instead of waiting for the result')
    .addHelpText(
      'after',
      `\nExamples:\n  $ cutover deploy --to 8 --backup-table public.orders\n  $ cutover deploy --require-approval --no-wait && cutover approve cutover-deploy-default apply\n${TEMPORAL_HELP}`,
    )
    .action(
      action(
        async (o: {
          dir: string;
          connection: string;
          to?: number;
          requireApproval?: boolean;
          allowUnsafe?: boolean;
          backupTable?: string[];
          postCheckUrl?: string;
          wait: boolean;
        }) => {
          const { startDeploy, uiUrl } = await runsLib();
          await withClient(async (client, namespace) => {
            const handle = await startDeploy(client, {
              connection: o.connection,
              dir: resolve(o.dir),
              to: o.to,
              requireApproval: o.requireApproval,
              allowUnsafe: o.allowUnsafe,
              backupTables: o.backupTable,
              postChecks: o.postCheckUrl
                ? [{ kind: 'http', name: 'health', url: o.postCheckUrl }]
                : undefined,
            });
            console.log(
              `started ${handle.workflowId}\n  Web UI: ${uiUrl(namespace, handle.workflowId)}`,
            );
            if (!o.wait) return;
            const result = await handle.result().catch((err: Error) => {
              throw new UserError(
                `deploy failed: ${(err.cause as Error | undefined)?.message ?? err.message}`,
              );
            });
            console.log(JSON.stringify(result, null, 2));
            if (result.outcome !== 'applied' && result.outcome !== 'up-to-date')
              process.exitCode = 1;
          });
        },
      ),
    );
  registerDeploySubcommands(deploy, TEMPORAL_HELP);

  program
    .command('approve')
    .summary('approve a waiting gate (e.g. shift, cleanup)')
    .argument('<run>', 'plan name or workflow id')
    .argument('[gate]', 'gate name; optional when exactly one gate is waiting')
    .addHelpText(
      'after',
      `\nRefused at once when the gate is not waiting.\nSame as: temporal workflow signal --workflow-id cutover-<plan> --name approve --input '{"gate":"shift"}'\n${TEMPORAL_HELP}`,
    )
    .action(
      action(async (run: string, gate: string | undefined) => {
        const { approve, workflowIdOf } = await runsLib();
        await withClient(async (client) => {
          const approved = await approve(client, run, gate, process.env.USER);
          console.log(`approved gate ${approved} of ${workflowIdOf(run)}`);
        });
      }),
    );

  program
    .command('abort')
    .summary('roll a run back: undo completed steps in reverse, losing no write')
    .argument('<run>', 'plan name or workflow id')
    .requiredOption('--reason <text>', 'why (recorded in the history and shown in status)')
    .option('--keep-shadow', 'keep the new table for inspection instead of dropping it')
    .addHelpText(
      'after',
      `\nSame as: temporal workflow signal --workflow-id cutover-<plan> --name abort --input '{"reason":"…"}'\n${TEMPORAL_HELP}`,
    )
    .action(
      action(async (run: string, o: { reason: string; keepShadow?: boolean }) => {
        const { abortRun, workflowIdOf } = await runsLib();
        await withClient(async (client) => {
          await abortRun(client, run, o.reason, Boolean(o.keepShadow));
          console.log(
            `abort sent to ${workflowIdOf(run)}; follow the rollback with \`cutover status ${run} --watch\``,
          );
        });
      }),
    );

  for (const [name, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    program
      .command(name)
      .summary(
        paused
          ? 'pause a run (the backfill stops between batches; no new step starts)'
          : 'resume a paused run',
      )
      .argument('<run>', 'plan name or workflow id')
      .addHelpText(
        'after',
        `\nSame as: temporal workflow signal --workflow-id cutover-<plan> --name ${name}\n${TEMPORAL_HELP}`,
      )
      .action(
        action(async (run: string) => {
          const { pauseRun, workflowIdOf } = await runsLib();
          await withClient(async (client) => {
            await pauseRun(client, run, paused);
            console.log(`${name} sent to ${workflowIdOf(run)}`);
          });
        }),
      );
  }

  program
    .command('throttle')
    .summary('change the backfill speed while it runs')
    .argument('<run>', 'plan name or workflow id')
    .addOption(new Option('--batch-size <rows>', 'rows per batch').argParser(parsePositiveInt))
    .addOption(
      new Option('--sleep <duration>', 'pause between batches, e.g. 50ms').argParser(parseDuration),
    )
    .option('--adaptive', 'slow down automatically when batches get slow')
    .option('--no-adaptive', 'fixed batch size and sleep')
    .option('--load-budget', "obey the plan's load budget again")
    .option('--no-load-budget', "ignore the plan's load budget: fixed batch size and sleep")
    .addOption(
      new Option(
        '--target-batch <duration>',
        'adaptive mode: batch latency to stay under',
      ).argParser(parseDuration),
    )
    .addHelpText(
      'after',
      `\nExamples:\n  $ cutover throttle widen_orders_id --batch-size 2000 --sleep 100ms\n  $ cutover throttle widen_orders_id --adaptive --target-batch 200ms\n${TEMPORAL_HELP}`,
    )
    .action(
      action(
        async (
          run: string,
          o: {
            batchSize?: number;
            sleep?: number;
            adaptive?: boolean;
            targetBatch?: number;
            loadBudget?: boolean;
          },
        ) => {
          const request = {
            batchSize: o.batchSize,
            sleepMs: o.sleep,
            adaptive: o.adaptive,
            targetBatchMs: o.targetBatch,
            loadBudget: o.loadBudget,
          };
          if (Object.values(request).every((v) => v === undefined))
            throw new UsageError(
              'give at least one of --batch-size, --sleep, --adaptive, --target-batch, --load-budget',
            );
          const { throttleRun, workflowIdOf } = await runsLib();
          await withClient(async (client) => {
            const now = await throttleRun(client, run, request);
            console.log(`throttle of ${workflowIdOf(run)} is now ${JSON.stringify(now)}`);
          });
        },
      ),
    );

  program
    .command('list')
    .summary('list blue-green runs (newest first)')
    .option('--json', 'machine-readable output')
    .addHelpText('after', TEMPORAL_HELP)
    .action(
      action(async (o: { json?: boolean }) => {
        const { listRuns, uiUrl } = await runsLib();
        await withClient(async (client, namespace) => {
          const runs = await listRuns(client);
          if (o.json) return console.log(JSON.stringify(runs, null, 2));
          if (!runs.length) return console.log('no runs');
          for (const r of runs)
            console.log(
              `${r.workflowId.padEnd(40)} ${r.status.padEnd(12)} ${r.started.toISOString()}  ${uiUrl(namespace, r.workflowId)}`,
            );
        });
      }),
    );
}
