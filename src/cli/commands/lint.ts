import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, InvalidArgumentError, Option } from 'commander';
import { UsageError } from '../../errors';
// Not '../../lint': its index pulls in the parser (libpg-query), which only linting needs.
import { OUTPUT_FORMATS, formatResult, type OutputFormat } from '../../lint/format';
import { parseMigrationFileName } from '../../lint/migration-files';
import { RULES } from '../../lint/rules';
import { action } from '../run';

interface LintOpts {
  dir: string;
  format: OutputFormat;
  json?: boolean;
  since?: number;
  serverVersion?: number;
  runnerLockTimeout: boolean;
  rules?: boolean;
}

/** Accepts 15, 15.4 or a server_version_num like 150004. */
function parseServerVersion(value: string): number {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(value.trim());
  if (!m)
    throw new InvalidArgumentError(
      `"${value}" is not a PostgreSQL version (e.g. 11, 15.4 or 150004)`,
    );
  const major = Number(m[1]);
  return major >= 10000 ? major : major * 10000 + Number(m[2] ?? 0);
}

function parseVersion(value: string): number {
  if (!/^\d+$/.test(value))
    throw new InvalidArgumentError(`"${value}" is not a migration version (e.g. 0007)`);
  return Number(value);
}

async function sqlFilesIn(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    throw new UsageError(`migrations directory ${dir} does not exist (pass files, or --dir)`);
  }
  return names
    .filter((n) => n.endsWith('.sql'))
    .sort()
    .map((n) => join(dir, n));
}

async function lint(files: string[], o: LintOpts): Promise<void> {
  if (o.rules) {
    process.stdout.write(
      RULES.map((r) => `${r.id.padEnd(38)} ${r.severity.padEnd(8)} ${r.title}\n`).join(''),
    );
    return;
  }
  for (const f of files) {
    const s = await stat(f).catch(() => undefined);
    if (!s?.isFile()) throw new UsageError(`${f} is not a file`);
  }
  let targets = files.length > 0 ? files : await sqlFilesIn(o.dir);
  let context: string[] = [];
  if (o.since !== undefined) {
    const since = o.since;
    const before = (f: string): boolean => {
      const m = parseMigrationFileName(f);
      return m !== undefined && m.version < since;
    };
    context = targets.filter(before);
    targets = targets.filter((f) => !before(f));
  }
  // The parser is WebAssembly (libpg-query). V8 compiles it fast (Liftoff), then optimises it
  // again on background threads, and a short process waits for that at exit (~0.8 s of a 1 s
  // lint). A CLI lint never needs the optimised code; a long-lived worker keeps the default.
  setFlagsFromString('--liftoff-only');
  const { lintFiles } = await import('../../lint/lint');
  const result = await lintFiles(targets, {
    context,
    serverVersion: o.serverVersion,
    runnerSetsLockTimeout: o.runnerLockTimeout,
  });
  const out = formatResult(result, o.json ? 'json' : o.format);
  if (out) process.stdout.write(`${out}\n`);
  if (result.errorCount > 0) process.exitCode = 1;
}

export function register(program: Command): void {
  program
    .command('lint')
    .argument('[files...]', 'SQL files to lint (default: every *.sql in --dir)')
    .description(
      'Check migrations for operations that lock or break a live table, with the real ' +
        'PostgreSQL parser: CREATE INDEX without CONCURRENTLY, constraints without NOT VALID, ' +
        'column type changes, renames, drops, ... Each finding says why it is dangerous and the ' +
        'safe form, and for type changes and renames the expand/contract steps or cutover plan ' +
        'that does it safely.\n\n' +
        'Exit 1 when any error-level finding remains, 0 otherwise (warnings do not fail), 2 on ' +
        'a usage error.',
    )
    .option(
      '-d, --dir <path>',
      'migrations directory',
      process.env.CUTOVER_MIGRATIONS_DIR ?? 'migrations',
    )
    .addOption(
      new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS).default('text'),
    )
    .option('--json', 'same as --format json')
    .addOption(
      new Option(
        '--since <version>',
        'lint migrations from this version on; earlier ones are read as already applied',
      ).argParser(parseVersion),
    )
    .addOption(
      new Option(
        '--server-version <version>',
        'target PostgreSQL version (enables old-server rules)',
      ).argParser(parseServerVersion),
    )
    .option(
      '--no-runner-lock-timeout',
      "the runner's lock_timeout is disabled (--lock-timeout 0): require SET lock_timeout in each file",
    )
    .option('--rules', 'list the rules and exit')
    .addHelpText(
      'after',
      `
Tables created earlier in the linted set count as new (locking them harms nobody); use --since
so migrations that are already deployed count as existing tables.

Switch a rule off, always with a reason (an ignore without one is itself an error):
  -- cutover-lint:ignore drop-column -- column unused since release 42   (next statement)
  DROP TABLE tmp; -- cutover-lint:ignore drop-table -- scratch table    (same line)
  -- cutover-lint:ignore-file prefer-text -- legacy schema kept as is   (whole file)
Down scripts may drop and rename what their up script created: drop/rename rules skip them.
Rules, why and safe alternatives: docs/lint-rules.md (or cutover lint --rules).

Examples:
  $ cutover lint                                 # every migration in ./migrations
  $ cutover lint migrations/0009_*.sql           # just the new one
  $ cutover lint --since 0009 --format github    # CI: annotate the pull request
  $ cutover lint --json | jq '.findings[].rule'`,
    )
    .action(action(lint));
}
