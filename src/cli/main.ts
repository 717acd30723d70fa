import { Command, CommanderError } from 'commander';
import { setVerbose } from './run';
import { register as registerMigrations } from './commands/migrations';
import { register as registerRuns } from './commands/runs';
import { register as registerWorker } from './commands/worker';
import { register as registerLint } from './commands/lint';
import { register as registerBackup } from './commands/backup';
import { register as registerPlan } from './commands/plan';
import { addVerboseEverywhere, addVersionEverywhere } from './version';

const program = new Command('cutover')
  .description(
    'Durable, zero-downtime PostgreSQL migrations orchestrated by Temporal: versioned SQL ' +
      'migrations with down scripts and a checksummed history, and blue-green table changes ' +
      '(shadow table, two-way sync, keyset backfill, exact verification, gradual traffic shift) ' +
      'that survive crashes and roll back losing nothing.',
  )
  // Each command parses only its own options, so a subcommand's option can share a name with
  // its parent's (`deploy --to` applies up to a version, `deploy rollback --to` goes back to
  // one). --verbose is on every command (below), so it still works wherever it is typed.
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .hook('preAction', (_program, action) => setVerbose(Boolean(action.optsWithGlobals().verbose)));

// Each command group registers itself here; see src/cli/commands/.
const registrations: Array<(p: Command) => void> = [
  registerMigrations,
  registerLint,
  registerBackup,
  registerPlan,
  registerRuns,
  registerWorker,
];
for (const register of registrations) register(program);
addVersionEverywhere(program);
addVerboseEverywhere(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every other commander error is a usage error.
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  throw err;
}
