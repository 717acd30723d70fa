import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { UsageError, UserError } from '../../errors';
import { showRun } from './runs';
import type { RunnerOptions, StatusReport } from '../../migrate';
import { pad } from '../../migrate/files';
import { parseDuration, parsePositiveInt } from '../options';
import { action, logLine } from '../run';
import { maskSecrets } from '../../safe-text';

// The runner (pg, and libpg-query for its safety lint) loads only when a command needs it.
const migrateLib = () => import('../../migrate');
const connectLib = () => import('../../db/connect');

interface CommonOpts {
  dir: string;
  connection: string;
  lockTimeout: number;
  lockRetries: number;
  wait: boolean;
}

const ENV_HELP = `
Connection: DATABASE_URL (or CUTOVER_DATABASE_URL); --connection NAME reads CUTOVER_DB_<NAME>_URL.
Migrations: pairs of files NNNN_name.up.sql / NNNN_name.down.sql in --dir (default ./migrations,
or CUTOVER_MIGRATIONS_DIR). A first line "-- cutover:no-transaction" runs that script statement by
statement outside a transaction (for CREATE INDEX CONCURRENTLY).`;

function withCommon(cmd: Command, runner = true): Command {
  cmd
    .option(
      '-d, --dir <path>',
      'migrations directory',
      process.env.CUTOVER_MIGRATIONS_DIR ?? 'migrations',
    )
    .option('-c, --connection <name>', 'named connection (see below)', 'default');
  if (runner) {
    cmd
      .addOption(
        new Option(
          '--lock-timeout <duration>',
          'lock_timeout for every statement; 0 disables it and its retries',
        )
          .default(3000, '3s')
          .argParser(parseDuration),
      )
      .addOption(
        new Option(
          '--lock-retries <n>',
          'attempts per migration when a lock is not granted in time',
        )
          .default(10)
          .argParser(parsePositiveInt),
      )
      .option('--no-wait', 'fail at once if another cutover runner holds the migration lock');
  }
  return cmd.addHelpText('after', ENV_HELP);
}

function runnerOptions(o: CommonOpts): RunnerOptions {
  return {
    dir: resolve(o.dir),
    lockTimeoutMs: o.lockTimeout,
    lockAttempts: o.lockRetries,
    noWait: !o.wait,
    log: logLine,
  };
}

function oneLine(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

function printStatus(report: StatusReport): void {
  const rows = report.entries.map((e) => [
    pad(e.version),
    e.name,
    e.state === 'partial'
      ? `partial (${e.statementsRun!.length}/${e.statementsTotal} statements)`
      : e.state,
    e.appliedAt ? e.appliedAt.replace('T', ' ').slice(0, 19) : '',
    e.executionMs !== undefined ? `${e.executionMs} ms` : '',
    e.hasDown ? '' : 'no down script',
  ]);
  const header = ['VERSION', 'NAME', 'STATE', 'APPLIED AT (UTC)', 'TOOK', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows])
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
  for (const e of report.entries.filter((x) => x.state === 'partial')) {
    console.log(
      `\n${pad(e.version)}_${e.name}: partially applied (no-transaction script stopped after ${e.statementsRun!.length} of ${e.statementsTotal} statements); these ran and stay applied:`,
    );
    for (const sql of e.statementsRun!) console.log(`  ${oneLine(sql)};`);
    if (e.error) console.log(`  then failed: ${oneLine(e.error)}`);
    console.log('  make the script re-runnable (IF NOT EXISTS) and run `cutover migrate` again');
  }
  const pending = report.entries.filter(
    (e) => e.state === 'pending' || e.state === 'partial',
  ).length;
  console.log(`\ncurrent version: ${pad(report.current)}; ${pending} pending`);
}

export function register(program: Command): void {
  withCommon(
    program
      .command('migrate')
      .summary('apply pending versioned migrations')
      .description(
        'Apply pending migrations in order, each in its own transaction, under an advisory lock so two\n' +
          'runners never interleave. Every statement runs under lock_timeout and is retried with backoff\n' +
          'when its lock is not granted, so a migration never queues behind a long transaction for long.',
      )
      .option(
        '--to <version>',
        'apply up to and including this version (e.g. 3, 0003, 0003_create_posts)',
      )
      .option(
        '--dry-run',
        'apply inside a transaction, print what ran and how long it took, then roll back',
      )
      .option(
        '--allow-out-of-order',
        'apply pending migrations numbered below the newest applied one',
      )
      .option('--allow-unsafe', 'apply even when the safety lint reports errors (see cutover lint)')
      .option('--json', 'print the result as JSON on stdout')
      .addHelpText(
        'after',
        `\nThe safety lint (cutover lint) runs first: error-level findings refuse the run.\n\nExamples:\n  $ cutover migrate\n  $ cutover migrate --to 0004 --dry-run\n  $ cutover migrate --lock-timeout 500ms --no-wait`,
      ),
  ).action(
    action(
      async (
        o: CommonOpts & {
          to?: string;
          dryRun?: boolean;
          allowOutOfOrder?: boolean;
          allowUnsafe?: boolean;
          json?: boolean;
        },
      ) => {
        const [{ migrate }, { connectionUrl }] = await Promise.all([migrateLib(), connectLib()]);
        const results = await migrate(connectionUrl(o.connection), {
          ...runnerOptions(o),
          to: o.to,
          dryRun: o.dryRun,
          allowOutOfOrder: o.allowOutOfOrder,
          allowUnsafe: o.allowUnsafe,
        });
        if (o.json)
          return console.log(
            JSON.stringify({ dryRun: Boolean(o.dryRun), migrations: results }, null, 2),
          );
        if (o.dryRun) {
          for (const r of results) {
            console.log(
              `-- ${r.id}${r.skipped ? ' (no transaction: not executed in a dry run)' : ` (${r.ms} ms)`}`,
            );
            for (const s of r.sql ?? []) console.log(`${s};`);
          }
          console.log(
            `dry run: ${results.length} migration(s) would be applied; nothing was changed`,
          );
        } else {
          console.log(`applied ${results.length} migration(s)`);
        }
      },
    ),
  );

  withCommon(
    program
      .command('rollback')
      .summary('run down scripts of applied migrations, newest first')
      .description(
        'Roll back applied migrations with their down scripts, newest first, each in its own transaction\n' +
          'together with its history row. Refuses before running anything when a down script is missing.',
      )
      .option('--to <version>', 'roll back every migration above this version (0 = all)')
      .addOption(
        new Option(
          '--steps <n>',
          'roll back the newest N migrations (default 1); refused when fewer are applied',
        ).argParser(parsePositiveInt),
      )
      .option('--all', 'roll back every applied migration')
      .addHelpText(
        'after',
        `\nExamples:\n  $ cutover rollback            # the newest one\n  $ cutover rollback --steps 2\n  $ cutover rollback --to 0003`,
      ),
  ).action(
    action(async (o: CommonOpts & { to?: string; steps?: number; all?: boolean }) => {
      const [{ rollback }, { connectionUrl }] = await Promise.all([migrateLib(), connectLib()]);
      const results = await rollback(connectionUrl(o.connection), {
        ...runnerOptions(o),
        to: o.to,
        steps: o.steps,
        all: o.all,
      });
      console.log(`rolled back ${results.length} migration(s)`);
    }),
  );

  withCommon(
    program
      .command('status')
      .summary('versioned migrations (no argument) or a blue-green run (plan name / workflow id)')
      .description(
        'Without an argument: applied, pending, changed and missing versioned migrations.\n' +
          'With a run (plan name or workflow id): stage, step, backfill progress, route percent,\n' +
          'last check results and waiting gates of a blue-green run.',
      )
      .argument('[run]', 'plan name or workflow id of a blue-green run')
      .option('--json', 'print the report as JSON')
      .option('--watch', 'with a run: refresh until it ends (exit 1 unless it completed)')
      .addOption(
        new Option('--interval <duration>', 'refresh interval with --watch')
          .default(1000, '1s')
          .argParser(parseDuration),
      )
      .addHelpText(
        'after',
        '\nExamples:\n  $ cutover status\n  $ cutover status widen_orders_id --watch',
      ),
    false,
  ).action(
    action(
      async (
        run: string | undefined,
        o: CommonOpts & { json?: boolean; watch?: boolean; interval: number },
      ) => {
        if (run) return showRun(run, o);
        if (o.watch) throw new UsageError('--watch needs a run (plan name or workflow id)');
        const [{ status }, { connectionUrl }] = await Promise.all([migrateLib(), connectLib()]);
        const report = await status(connectionUrl(o.connection), { dir: resolve(o.dir) });
        if (o.json) console.log(maskSecrets(JSON.stringify(report, null, 2)));
        else printStatus(report);
      },
    ),
  );

  withCommon(
    program
      .command('validate')
      .summary('fail when an applied migration file changed or vanished')
      .description(
        'Compares the sha256 of every applied up script (BOM and line endings ignored) with the history.\nExit 1 when one changed or is ' +
          'missing: applied migrations must never be modified — add a new migration instead.',
      ),
    false,
  ).action(
    action(async (o: CommonOpts) => {
      const [{ integrityProblems, status }, { connectionUrl }] = await Promise.all([
        migrateLib(),
        connectLib(),
      ]);
      const problems = integrityProblems(
        await status(connectionUrl(o.connection), { dir: resolve(o.dir) }),
      );
      if (problems.length) throw new UserError(`validation failed:\n  ${problems.join('\n  ')}`);
      console.log('ok: every applied migration matches its file');
    }),
  );

  program
    .command('new')
    .summary('create the next numbered pair of migration files')
    .argument('<name>', 'what the migration does, e.g. add_orders_status')
    .option(
      '-d, --dir <path>',
      'migrations directory',
      process.env.CUTOVER_MIGRATIONS_DIR ?? 'migrations',
    )
    .addHelpText(
      'after',
      '\nExample:\n  $ cutover new add_orders_status\n  created migrations/0009_add_orders_status.up.sql',
    )
    .action(
      action(async (name: string, o: { dir: string }) => {
        const { createMigrationFiles } = await import('../../migrate/new-migration');
        const { up, down } = createMigrationFiles(resolve(o.dir), name);
        console.log(`created ${up}\ncreated ${down}`);
      }),
    );
}
