/**
 * `cutover deploy rollback|restore|leave|status`: the rollback procedure of versioned migrations
 * on the workers, and the operator's answer when down scripts cannot run.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors';
import { action } from '../run';
import { withClient as withTemporal } from './runs';

// Loaded by the subcommands that run, so `cutover --help` and every other command start without
// the Temporal client, the workflows and what they import.
const deploysLib = () => import('../../temporal/deploys');

function parseVersion(v: string): number {
  if (!/^\d+$/.test(v))
    throw new UsageError(`--to must be a version number, got "${v.slice(0, 20)}"`);
  return Number(v);
}

export function registerDeploySubcommands(deploy: Command, temporalHelp: string): void {
  // Subcommand options such as --to belong to the subcommand, not to `deploy` itself.
  deploy.enablePositionalOptions();

  deploy
    .command('rollback')
    .summary('take the database back to a version on the workers (down scripts)')
    .description(
      'Runs the rollback procedure as a durable workflow: optional backup point → version check → ' +
        'down scripts, newest first (each removes its history row) → health check. When a down ' +
        'script is missing or fails, the run waits: `cutover deploy restore <run>` restores the ' +
        'backup point, `cutover deploy leave <run>` leaves the database as it is.',
    )
    .requiredOption('--to <version>', 'version to go back to (0: before the first)', parseVersion)
    .option('-d, --dir <path>', 'migrations directory on the workers', 'migrations')
    .option('-c, --connection <name>', 'named connection', 'default')
    .option(
      '--backup-table <table...>',
      'pg_dump these tables first (the way back if a down script fails)',
    )
    .option('--post-check-url <url>', 'health URL that must answer 2xx afterwards')
    .option('--no-wait', 'print the workflow id and return instead of waiting for the result')
    .addHelpText(
      'after',
      `\nExamples:\n  $ cutover deploy rollback --to 6 --backup-table public.users\n  $ cutover deploy rollback --to 0 --no-wait\n${temporalHelp}`,
    )
    .action(
      action(
        async (o: {
          to: number;
          dir: string;
          connection: string;
          backupTable?: string[];
          postCheckUrl?: string;
          wait: boolean;
        }) => {
          const [{ startDeployRollback }, { uiUrl }] = await Promise.all([
            deploysLib(),
            import('../../temporal/runs'),
          ]);
          await withTemporal(async (client, namespace) => {
            const handle = await startDeployRollback(client, {
              connection: o.connection,
              dir: resolve(o.dir),
              to: o.to,
              backupTables: o.backupTable,
              postChecks: o.postCheckUrl
                ? [{ kind: 'http', name: 'health', url: o.postCheckUrl }]
                : undefined,
            });
            console.log(
              `started ${handle.workflowId}\n  Web UI: ${uiUrl(namespace, handle.workflowId)}`,
            );
            if (!o.wait) return;
            const result = await handle.result();
            console.log(JSON.stringify(result, null, 2));
            if (result.failedChecks.length) process.exitCode = 1;
          });
        },
      ),
    );

  deploy
    .command('restore')
    .summary('a run whose down scripts failed: restore the tables from its backup')
    .argument('<run>', 'workflow id, e.g. cutover-deploy-default')
    .option(
      '--side-schema <schema>',
      'first copy the tables as they are now into this schema (nothing written since the backup is lost)',
    )
    .addHelpText(
      'after',
      `\nSame as: temporal workflow signal --workflow-id <run> --name restore --input '{"sideSchema":"…"}'\n${temporalHelp}`,
    )
    .action(
      action(async (run: string, o: { sideSchema?: string }) => {
        const { answerRestore } = await deploysLib();
        await withTemporal(async (client) => {
          const status = await answerRestore(client, run, {
            restore: true,
            sideSchema: o.sideSchema,
          });
          console.log(
            `restoring backup ${status.backupId} for ${run}; follow: cutover deploy status ${run}`,
          );
        });
      }),
    );

  deploy
    .command('leave')
    .summary('a run whose down scripts failed: leave the database as it is, finish as failed')
    .argument('<run>', 'workflow id, e.g. cutover-deploy-default')
    .addHelpText(
      'after',
      `\nSame as: temporal workflow signal --workflow-id <run> --name leave\n${temporalHelp}`,
    )
    .action(
      action(async (run: string) => {
        const { answerRestore } = await deploysLib();
        await withTemporal(async (client) => {
          await answerRestore(client, run, { restore: false });
          console.log(`${run} will finish as failed, leaving the database as it is`);
        });
      }),
    );

  deploy
    .command('status')
    .summary('state of a deploy or rollback run, and what to do when it waits')
    .argument('<run>', 'workflow id, e.g. cutover-deploy-default')
    .addOption(new Option('--json', 'print the raw status'))
    .action(
      action(async (run: string, o: { json?: boolean }) => {
        const { deployStatus } = await deploysLib();
        await withTemporal(async (client) => {
          const s = await deployStatus(client, run);
          if (o.json) return void console.log(JSON.stringify(s, null, 2));
          console.log(
            `${run}: ${s.state}${s.from !== undefined ? ` (from version ${s.from})` : ''}`,
          );
          if (s.applied.length) console.log(`  applied: ${s.applied.join(', ')}`);
          if (s.backupId) console.log(`  backup: ${s.backupId}`);
          if (s.problem) console.log(`  ${s.problem}`);
          for (const n of s.next ?? []) console.log(`  next: ${n}`);
        });
      }),
    );
}
