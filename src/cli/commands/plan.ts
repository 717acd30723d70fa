import { Command } from 'commander';
import { UserError } from '../../errors';
import type { ExpandPlan, ResolvedPlan } from '../../plan/resolved';
import type { PlanFile } from '../../plan/schema';
import type { ResolvedStage } from '../../plan/stages';
import { action } from '../run';

function renderStages(stages: ResolvedStage[]): string {
  return stages
    .map((s) => {
      const steps = s.steps.map((st) => {
        if (st.kind === 'route') return `route ${st.percent}%`;
        if (st.kind === 'monitor') return `monitor ${st.seconds}s`;
        if (st.kind === 'approval') return `approval (gate ${st.gate})`;
        if (st.kind === 'hook') return `hook ${st.name ?? ''}`.trim();
        // Expand/contract steps say what they change.
        const col = (t: string, c?: string) => `${t}${c !== undefined ? `.${c}` : ''}`;
        if (st.kind === 'addColumn' || st.kind === 'backfillColumn' || st.kind === 'setNotNull')
          return `${st.kind} ${col(st.table, st.column)}`;
        if (st.kind === 'createIndex') return `createIndex ${st.index}`;
        if (st.kind === 'addConstraint') return `addConstraint ${st.constraint}`;
        if (st.kind === 'batchMigrate')
          return `batchMigrate ${st.migration}${st.dryRun ? ' (dry run)' : ''}`;
        if (st.kind === 'deprecate') return `deprecate ${col(st.table, st.column)}`;
        if (st.kind === 'drop')
          return `drop ${col(st.table, st.column)}${st.confirmedUnused ? '' : ` (gate ${st.gate} without pg_stat_statements)`}`;
        return st.kind;
      });
      return `  ${s.name.padEnd(16)} ${steps.join(' → ')}`;
    })
    .join('\n');
}

function renderSummary(plan: ResolvedPlan): string {
  const c = plan.change;
  const t = (r: { schema: string; table: string }) => `${r.schema}.${r.table}`;
  const mapping = (ms: Array<{ column: string; expression: string }>) =>
    ms.map((m) => `    ${m.column} ← ${m.expression}`).join('\n');
  const lines = [
    `plan ${c.name} (${plan.fileName}): OK`,
    `  source     ${t(c.source)}  (connection "${c.connection}")`,
    `  target     ${t(c.target)}`,
    `  key        (${c.sourceKey.join(', ')})`,
    `  direction  ${plan.readsOnly ? 'reads-only: no mapping.down, only reads may shift to the new table' : 'two-way: writes on either table are synced to the other'}`,
    `  mapping up (target column ← expression over a source row):`,
    mapping(c.up),
  ];
  if (c.down)
    lines.push(`  mapping down (source column ← expression over a target row):`, mapping(c.down));
  lines.push(
    `  deferred   ${plan.deferred.length === 0 ? 'none' : plan.deferred.map((d) => `${d.kind} ${d.name}`).join(', ')} (built after the backfill)`,
    `  backfill   batches of ${plan.backfill.batchSize}, pause ${plan.backfill.pauseMs} ms, ${plan.backfill.parallelRanges} range(s), adaptive ${plan.backfill.adaptive.enabled ? 'on' : 'off'}`,
    `  verify     chunks of ${plan.verify.chunkSize}, ${plan.verify.sqlChecks.length} SQL check(s)`,
    `  stages:`,
    renderStages(plan.stages),
  );
  const has = (kind: string) => plan.stages.some((s) => s.steps.some((step) => step.kind === kind));
  const finish = has('swap')
    ? 'what the swap does with each'
    : has('rename')
      ? 'what the rename does with each: the new table keeps its name, the old name is a view over it until cleanup'
      : 'no swap step: the new table keeps its own name';
  if (plan.dependents?.length)
    lines.push(
      `  dependents of ${t(c.source)} (${finish}):`,
      ...plan.dependents.map((d) => `    ${d.kind.padEnd(17)} ${d.name}: ${d.action}`),
    );
  return lines.join('\n') + '\n';
}

/** An expand/contract plan: the tables its steps change, and its stages. */
function renderExpandSummary(plan: ExpandPlan): string {
  return (
    [
      `plan ${plan.name} (${plan.fileName}): OK`,
      `  kind       expand/contract: the steps change the tables in place (no new table, no swap)`,
      `  tables     ${plan.tables.join(', ') || 'none'}  (connection "${plan.connection}")`,
      `  stages:`,
      renderStages(plan.stages),
    ].join('\n') + '\n'
  );
}

// The plan loader (zod, yaml) and pg load only when a plan command runs, not at every CLI start.
async function load(file: string): Promise<PlanFile> {
  const { loadPlanFile } = await import('../../plan/load');
  return loadPlanFile(file);
}

export function register(program: Command): void {
  const plan = program
    .command('plan')
    .description(
      'Plan files describe one blue-green table change: source table, key, the new table,\n' +
        'column mappings (up: old → new, down: new → old), backfill, verification, traffic\n' +
        'shift and stages. See plans/ for examples.',
    );

  plan
    .command('check')
    .description(
      'check a plan file against the live database without changing anything (exit 1 on problems)',
    )
    .argument('<file>', 'plan file (YAML)')
    .option('--json', 'print the resolved plan (the workflow input) as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ cutover plan check plans/widen-orders-id.yaml
  $ cutover plan check plans/split-name.yaml --json > resolved.json
  $ cutover plan check plans/expand-contract-users.yaml

What is checked: the table and key exist, the key is unique and NOT NULL, every mapping
expression compiles and fits its column, the new table's DDL is valid, SQL checks compile. All
of it runs in one transaction that is rolled back, under a short lock_timeout. Then every row
is read in keyset batches (the backfill's batchSize and pauseMs) to prove it maps: no overflow,
truncation, NULL into NOT NULL, duplicate under a new unique index, or failed round trip through
mapping.down; the first offending keys are named (mapping.lossy: <reason> accepts a declared loss).
An expand/contract plan (no source / target) has each step checked against its table as the
earlier steps will leave it: a NULL a setNotNull would meet, a duplicate a unique index would
meet, a row a constraint would reject, each with the first offending keys.

The database comes from the plan's connection (default: DATABASE_URL; a connection named
"reporting" reads CUTOVER_DB_REPORTING_URL). Every problem is printed as
  <file>: <field>: <what is wrong and what to do>`,
    )
    .action(
      action(async (file: string, opts: { json?: boolean }) => {
        const [
          { connectionUrl, openClient },
          { checkPlan },
          { formatProblem },
          { describeTriggers, tableTriggers },
        ] = await Promise.all([
          import('../../db/connect'),
          import('../../plan/check'),
          import('../../plan/load'),
          import('../../plan/triggers'),
        ]);
        const parsed = await load(file);
        const client = await openClient(connectionUrl(parsed.connection), 'cutover-plan-check');
        try {
          const report = await checkPlan(parsed, client, {
            fileName: file.split('/').pop() ?? file,
          });
          if (!report.ok) {
            const lines = report.problems.map((p) => formatProblem(report.fileName, p));
            // One problem fits the one-line `<where>: <what>: <what to do>` form on its own.
            throw new UserError(
              lines.length === 1
                ? lines[0]!
                : `${report.fileName}: plan has ${lines.length} problems:\n  ${lines.join('\n  ')}`,
            );
          }
          if (report.expand) {
            process.stdout.write(
              opts.json
                ? `${JSON.stringify(report.expand, null, 2)}\n`
                : renderExpandSummary(report.expand),
            );
            return;
          }
          const source = report.plan!.change.source;
          const triggers = describeTriggers(source, await tableTriggers(client, source));
          process.stdout.write(
            opts.json
              ? `${JSON.stringify(report.plan, null, 2)}\n`
              : renderSummary(report.plan!) + triggers.join('\n') + '\n',
          );
        } finally {
          await client.end().catch(() => {});
        }
      }),
    );

  plan
    .command('show')
    .description('validate a plan file offline (no database) and print its settings and stages')
    .argument('<file>', 'plan file (YAML)')
    .option('--json', 'print the validated plan, defaults filled in, as JSON')
    .addHelpText('after', '\nExample:\n  $ cutover plan show plans/rename-posts-articles.yaml\n')
    .action(
      action(async (file: string, opts: { json?: boolean }) => {
        const { offlineProblems } = await import('../../plan/stages');
        const parsed = await load(file);
        const { stages } = offlineProblems(parsed);
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ ...parsed, stages }, null, 2)}\n`);
          return;
        }
        if (parsed.source === undefined || parsed.target === undefined) {
          process.stdout.write(
            [
              `plan ${parsed.name}: expand/contract (the steps change the tables they name)`,
              `  stages:`,
              renderStages(stages),
              `(run "cutover plan check ${file}" to check it against the database)`,
            ].join('\n') + '\n',
          );
          return;
        }
        const lines = [
          `plan ${parsed.name}: ${parsed.source} → ${parsed.target.table}`,
          `  key        ${parsed.key === undefined ? '(primary key)' : ([] as string[]).concat(parsed.key).join(', ')}`,
          `  direction  ${parsed.mapping.down === undefined || parsed.shift.readsOnly ? 'reads-only' : 'two-way'}`,
          `  mapping up ${
            Object.entries(parsed.mapping.up)
              .map(([k, v]) => `${k} ← ${v}`)
              .join('; ') || '(all by name)'
          }`,
          `  stages:`,
          renderStages(stages),
          `(run "cutover plan check ${file}" to check it against the database)`,
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
