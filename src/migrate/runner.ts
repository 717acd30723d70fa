import { hostname, userInfo } from 'node:os';
import { basename } from 'node:path';
import pg from 'pg';
import { openClient, serverVersionOf } from '../db/connect';
import { defaultLockRetry, withLockRetry } from '../db/lock-timeout';
import { UserError } from '../errors';
import { acquireRunnerLock, releaseRunnerLock } from './advisory-lock';
import { statementError } from './errors';
import { loadMigrations, pad, type MigrationFile, type MigrationScript } from './files';
import {
  clearProgress,
  ensureHistoryTable,
  readHistory,
  readProgress,
  recordApplied,
  recordProgressError,
  recordRolledBack,
  recordStatementDone,
  startProgress,
  upgradeChecksum,
  type AppliedMigration,
  type MigrationProgress,
} from './history';
import { splitStatements, type SqlStatement } from './sql-split';
import { formatFindings, lintFiles } from '../lint';

/** A database to run against: a connection string, or an open client the caller owns. */
export type Db = string | pg.Client;

export interface RunnerOptions {
  /** Directory holding NNNN_name.up.sql / .down.sql files. */
  dir: string;
  /** lock_timeout for every statement, in ms; 0 disables it (and its retries). */
  lockTimeoutMs?: number;
  /** Attempts per migration when a lock is not granted in time. */
  lockAttempts?: number;
  /** Fail at once when another runner holds the migration lock. */
  noWait?: boolean;
  /** Progress lines for humans. */
  log?: (line: string) => void;
  appliedBy?: string;
}

export interface MigrateOptions extends RunnerOptions {
  /** Last version to apply (number, "0003" or "0003_name"); default: all. */
  to?: number | string;
  /** Apply inside one transaction, report, and roll everything back. */
  dryRun?: boolean;
  /** Apply pending migrations numbered below the newest applied one (branch merges). */
  allowOutOfOrder?: boolean;
  /** Run migrations even when the safety lint reports error-level findings. */
  allowUnsafe?: boolean;
  /** Skip the safety lint entirely (tests of the runner itself). */
  skipLint?: boolean;
}

export interface RollbackOptions extends RunnerOptions {
  /** Roll back every migration above this version (0 = all). */
  to?: number | string;
  /** Roll back this many of the newest applied migrations. */
  steps?: number;
  /** Roll back every applied migration (same as to: 0). */
  all?: boolean;
}

export interface StepResult {
  id: string;
  version: number;
  ms: number;
  statements: number;
  /** Dry run: the statements that would run. */
  sql?: string[];
  /** Dry run of a no-transaction migration: shown, not executed. */
  skipped?: boolean;
}

/** partial: a no-transaction up script failed half-way; some of its statements stay applied. */
export type MigrationState = 'applied' | 'pending' | 'partial' | 'changed' | 'missing';

export interface StatusEntry {
  version: number;
  name: string;
  state: MigrationState;
  appliedAt?: string;
  executionMs?: number;
  appliedBy?: string;
  hasDown: boolean;
  /** partial: the statements that completed, out of statementsTotal, and the error that stopped it. */
  statementsRun?: string[];
  statementsTotal?: number;
  error?: string;
}

export interface StatusReport {
  current: number;
  entries: StatusEntry[];
}

/** Parses a target version: 3, "3", "0003" or "0003_create_posts". */
export function parseVersion(v: number | string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  const m = /^(\d+)(?:_[a-z0-9_]+)?$/.exec(String(v));
  if (!m)
    throw new UserError(
      `"${v}" is not a migration version (expected e.g. 3, 0003 or 0003_create_posts)`,
      2,
    );
  return Number(m[1]);
}

function defaultAppliedBy(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

async function withRunner<T>(
  db: Db,
  opts: RunnerOptions,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = typeof db === 'string' ? await openClient(db, 'cutover migrate') : db;
  try {
    await acquireRunnerLock(client, {
      noWait: opts.noWait,
      onWait: (holder) => opts.log?.(`waiting for another cutover runner to finish (${holder})…`),
    });
    try {
      return await work(client);
    } finally {
      await releaseRunnerLock(client).catch(() => {});
    }
  } finally {
    if (typeof db === 'string') await client.end().catch(() => {});
  }
}

/** True when a history row's checksum is this file's, current or as an older cutover stored it. */
export function checksumMatches(f: MigrationFile, h: AppliedMigration): boolean {
  return h.checksum === f.checksum || f.legacyChecksums.includes(h.checksum);
}

export function computeStatus(
  files: MigrationFile[],
  history: AppliedMigration[],
  progress: MigrationProgress[] = [],
): StatusReport {
  const applied = new Map(history.map((h) => [h.version, h]));
  const partial = new Map(progress.map((p) => [p.version, p]));
  const entries: StatusEntry[] = files.map((f) => {
    const h = applied.get(f.version);
    const base = { version: f.version, name: f.name, hasDown: Boolean(f.down) };
    const p = partial.get(f.version);
    if (!h && p && p.statementsDone.length > 0) {
      return {
        ...base,
        state: 'partial',
        statementsRun: p.statementsDone,
        statementsTotal: p.statementsTotal,
        error: p.error,
      };
    }
    if (!h) return { ...base, state: 'pending' };
    return {
      ...base,
      state: checksumMatches(f, h) && h.name === f.name ? 'applied' : 'changed',
      appliedAt: h.appliedAt.toISOString(),
      executionMs: h.executionMs,
      appliedBy: h.appliedBy,
    };
  });
  const known = new Set(files.map((f) => f.version));
  for (const h of history) {
    if (known.has(h.version)) continue;
    entries.push({
      version: h.version,
      name: h.name,
      state: 'missing',
      appliedAt: h.appliedAt.toISOString(),
      executionMs: h.executionMs,
      appliedBy: h.appliedBy,
      hasDown: false,
    });
  }
  entries.sort((a, b) => a.version - b.version);
  return { current: history.length ? Math.max(...history.map((h) => h.version)) : 0, entries };
}

export async function status(db: Db, opts: Pick<RunnerOptions, 'dir'>): Promise<StatusReport> {
  const files = loadMigrations(opts.dir);
  const client = typeof db === 'string' ? await openClient(db, 'cutover status') : db;
  try {
    return computeStatus(files, await readHistory(client), await readProgress(client));
  } finally {
    if (typeof db === 'string') await client.end().catch(() => {});
  }
}

/** Problems that make applying or trusting the history unsafe: changed or vanished applied files. */
export function integrityProblems(report: StatusReport): string[] {
  return report.entries
    .filter((e) => e.state === 'changed' || e.state === 'missing')
    .map((e) =>
      e.state === 'changed'
        ? `${pad(e.version)}_${e.name}: the up script changed after it was applied (checksum differs); never modify applied migrations — add a new one`
        : `${pad(e.version)}_${e.name}: applied, but its file is missing from the migrations directory`,
    );
}

async function runScript(
  client: pg.Client,
  script: MigrationScript,
  opts: RunnerOptions,
  inTransaction: (stmts: SqlStatement[]) => Promise<void>,
  /** No-transaction up scripts: record each completed statement (see history.ts). */
  track?: { version: number; name: string },
): Promise<number> {
  const stmts = await splitStatements(script.sql);
  const lockTimeoutMs = opts.lockTimeoutMs ?? defaultLockRetry.lockTimeoutMs;
  const retry = {
    lockTimeoutMs,
    attempts: lockTimeoutMs > 0 ? (opts.lockAttempts ?? defaultLockRetry.attempts) : 1,
    onRetry: (attempt: number, waitMs: number) =>
      opts.log?.(
        `  ${basename(script.path)}: lock not granted within ${lockTimeoutMs} ms (attempt ${attempt}); retrying in ${waitMs} ms`,
      ),
  };
  if (!script.noTransaction) {
    await withLockRetry(
      client,
      async () => {
        await client.query('BEGIN');
        try {
          await inTransaction(stmts);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      },
      retry,
    );
    return stmts.length;
  }
  if (track) await startProgress(client, track, stmts.length);
  for (const [i, stmt] of stmts.entries()) {
    try {
      await withLockRetry(client, () => client.query(stmt.sql), retry);
    } catch (err) {
      const e = statementError(
        err,
        script.path,
        stmt,
        i > 0
          ? `${i} earlier statement(s) of this no-transaction script were applied and stay applied (\`cutover status\` lists them); make the script re-runnable (IF NOT EXISTS) before retrying`
          : undefined,
      );
      if (track) await recordProgressError(client, track.version, e.message).catch(() => {});
      throw e;
    }
    if (track) await recordStatementDone(client, track.version, stmt.sql);
  }
  return stmts.length;
}

/** Runs statements one by one inside the caller's transaction, naming the failing line. */
async function execAll(client: pg.Client, path: string, stmts: SqlStatement[]): Promise<void> {
  for (const stmt of stmts) {
    try {
      await client.query(stmt.sql);
    } catch (err) {
      throw statementError(err, path, stmt);
    }
  }
}

export async function migrate(db: Db, opts: MigrateOptions): Promise<StepResult[]> {
  const files = loadMigrations(opts.dir);
  const log = opts.log ?? (() => {});
  const appliedBy = opts.appliedBy ?? defaultAppliedBy();
  return withRunner(db, opts, async (client) => {
    const history = await readHistory(client);
    const report = computeStatus(files, history);
    const problems = integrityProblems(report);
    if (problems.length) throw new UserError(`refusing to migrate:\n  ${problems.join('\n  ')}`);
    if (!opts.dryRun) await upgradeLegacyChecksums(client, files, history, log);

    const last = files.length ? files[files.length - 1]!.version : 0;
    const target = opts.to === undefined ? last : parseVersion(opts.to);
    if (opts.to !== undefined && !files.some((f) => f.version === target)) {
      throw new UserError(
        `unknown target version ${opts.to}: no migration ${pad(target)} in ${opts.dir}`,
        2,
      );
    }
    if (target < report.current) {
      throw new UserError(
        `target ${pad(target)} is below the current version ${pad(report.current)}; use \`cutover rollback --to ${pad(target)}\``,
      );
    }
    const applied = new Set(history.map((h) => h.version));
    const pending = files.filter((f) => !applied.has(f.version) && f.version <= target);
    const outOfOrder = pending.filter((f) => f.version < report.current);
    if (outOfOrder.length && !opts.allowOutOfOrder) {
      throw new UserError(
        `out-of-order migration(s) ${outOfOrder.map((f) => f.id).join(', ')} are numbered below the newest applied ` +
          `version ${pad(report.current)} (typically a branch merge). Renumber them above ${pad(report.current)}, ` +
          `or apply them anyway with --allow-out-of-order`,
      );
    }
    if (!pending.length) {
      log(`database is up to date at version ${pad(report.current)}`);
      return [];
    }
    if (!opts.skipLint) {
      const { num } = await serverVersionOf(client);
      await lintPending(files, pending, applied, num, opts, log);
    }
    return opts.dryRun
      ? dryRun(client, pending, log)
      : applyAll(client, pending, opts, appliedBy, log);
  });
}

/**
 * The safety lint runs before anything is applied: error-level findings (a blocking index build,
 * a table rewrite, …) refuse the run unless acknowledged, per statement with an ignore comment
 * carrying a reason, or for the whole run with allowUnsafe.
 */
async function lintPending(
  files: MigrationFile[],
  pending: MigrationFile[],
  applied: Set<number>,
  serverVersion: number,
  opts: MigrateOptions,
  log: (l: string) => void,
): Promise<void> {
  const scripts = (ms: MigrationFile[]) =>
    ms.flatMap((m) => [m.up.path, ...(m.down ? [m.down.path] : [])]);
  const result = await lintFiles(scripts(pending), {
    context: scripts(files.filter((f) => applied.has(f.version))),
    // Rules whose verdict depends on the major judge the server the scripts will run on.
    serverVersion,
    runnerSetsLockTimeout: (opts.lockTimeoutMs ?? defaultLockRetry.lockTimeoutMs) > 0,
  });
  // Syntax errors are left to the server, whose message names file and line when the script runs.
  const findings = result.findings.filter((f) => f.rule !== 'syntax-error');
  const errors = findings.filter((f) => f.severity === 'error').length;
  if (!findings.length) return;
  const report = formatFindings(findings, 'text');
  if (errors === 0) {
    log(report);
    return;
  }
  if (opts.allowUnsafe) {
    log(`${report}\nwarning: ${errors} unsafe operation(s) acknowledged with --allow-unsafe`);
    return;
  }
  throw new UserError(
    `refusing to migrate: the safety lint found ${errors} error(s); nothing was applied.\n${report}\n` +
      'Fix them, acknowledge one statement with `-- cutover-lint:ignore <rule> -- <reason>`, or run with --allow-unsafe.',
  );
}

/**
 * History rows written before checksums were normalized (see checksum.ts) are rewritten to the
 * normalized checksum once they are known to match, so later runs compare like with like.
 */
async function upgradeLegacyChecksums(
  client: pg.Client,
  files: MigrationFile[],
  history: AppliedMigration[],
  log: (l: string) => void,
): Promise<void> {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const h of history) {
    const f = byVersion.get(h.version);
    if (!f || h.checksum === f.checksum || !f.legacyChecksums.includes(h.checksum)) continue;
    await upgradeChecksum(client, h.version, f.checksum);
    log(`${f.id}: history checksum upgraded to the line-ending-independent form`);
  }
}

async function applyAll(
  client: pg.Client,
  pending: MigrationFile[],
  opts: MigrateOptions,
  appliedBy: string,
  log: (l: string) => void,
): Promise<StepResult[]> {
  await ensureHistoryTable(client);
  const results: StepResult[] = [];
  for (const m of pending) {
    log(`applying ${m.id}${m.up.noTransaction ? ' (no transaction)' : ''}`);
    const started = performance.now();
    let statements: number;
    if (m.up.noTransaction) {
      statements = await runScript(client, m.up, opts, async () => {}, m);
      await client.query('BEGIN');
      try {
        await recordApplied(client, m, performance.now() - started, appliedBy);
        await clearProgress(client, m.version);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    } else {
      statements = await runScript(client, m.up, opts, async (stmts) => {
        await execAll(client, m.up.path, stmts);
        await recordApplied(client, m, performance.now() - started, appliedBy);
      });
    }
    const ms = Math.round(performance.now() - started);
    log(`  done in ${ms} ms (${statements} statement${statements === 1 ? '' : 's'})`);
    results.push({ id: m.id, version: m.version, ms, statements });
  }
  return results;
}

/**
 * Applies every pending transactional migration inside ONE transaction (so later migrations see
 * earlier ones), reports timings, and rolls it all back: nothing persists, not even the history
 * table. No-transaction scripts cannot run inside it, so they are listed but not executed.
 */
async function dryRun(
  client: pg.Client,
  pending: MigrationFile[],
  log: (l: string) => void,
): Promise<StepResult[]> {
  const results: StepResult[] = [];
  await client.query('BEGIN');
  try {
    await ensureHistoryTable(client);
    for (const m of pending) {
      const stmts = await splitStatements(m.up.sql);
      const sql = stmts.map((s) => s.sql);
      if (m.up.noTransaction) {
        log(
          `would apply ${m.id} (no transaction: ${stmts.length} statement(s) shown, not executed in a dry run)`,
        );
        results.push({
          id: m.id,
          version: m.version,
          ms: 0,
          statements: stmts.length,
          sql,
          skipped: true,
        });
        continue;
      }
      const started = performance.now();
      await execAll(client, m.up.path, stmts);
      const ms = Math.round(performance.now() - started);
      log(`would apply ${m.id}: ${stmts.length} statement(s), ran in ${ms} ms, rolled back`);
      results.push({ id: m.id, version: m.version, ms, statements: stmts.length, sql });
    }
  } finally {
    await client.query('ROLLBACK').catch(() => {});
  }
  return results;
}

export async function rollback(db: Db, opts: RollbackOptions): Promise<StepResult[]> {
  if (
    [opts.to !== undefined, opts.steps !== undefined, Boolean(opts.all)].filter(Boolean).length > 1
  )
    throw new UserError('rollback: give one of --to, --steps or --all', 2);
  if (opts.steps !== undefined && (!Number.isInteger(opts.steps) || opts.steps < 1)) {
    throw new UserError(`--steps must be a positive whole number, got ${opts.steps}`, 2);
  }
  const files = loadMigrations(opts.dir);
  const byVersion = new Map(files.map((f) => [f.version, f]));
  const log = opts.log ?? (() => {});
  return withRunner(db, opts, async (client) => {
    const history = await readHistory(client);
    const newestFirst = [...history].sort((a, b) => b.version - a.version);
    let targets: AppliedMigration[];
    if (opts.to !== undefined) {
      const to = parseVersion(opts.to);
      if (to !== 0 && !byVersion.has(to) && !history.some((h) => h.version === to)) {
        throw new UserError(
          `unknown target version ${opts.to}: no migration ${pad(to)} in ${opts.dir}`,
          2,
        );
      }
      targets = newestFirst.filter((h) => h.version > to);
    } else if (opts.all) {
      targets = newestFirst;
    } else {
      const steps = opts.steps ?? 1;
      // Fewer applied than asked usually means a wrong database or a miscount: rolling back
      // everything there is would be a bigger change than the user reviewed.
      if (steps > history.length && history.length > 0) {
        throw new UserError(
          `rollback: --steps ${steps} asks for ${steps} migrations but only ${history.length} ${history.length === 1 ? 'is' : 'are'} applied; nothing was rolled back: ` +
            `use --steps ${history.length}, --all or --to <version>`,
        );
      }
      targets = newestFirst.slice(0, steps);
    }
    if (!targets.length) {
      log('nothing to roll back');
      return [];
    }
    // Refuse before anything runs: a rollback that stops half-way is worse than none.
    const missing = targets.filter((h) => !byVersion.get(h.version)?.down);
    if (missing.length) {
      throw new UserError(
        `cannot roll back: no down script for ${missing.map((h) => `${pad(h.version)}_${h.name}`).join(', ')}. ` +
          `Write the .down.sql file(s), or restore from a backup (cutover backup list)`,
      );
    }
    const results: StepResult[] = [];
    for (const h of targets) {
      const m = byVersion.get(h.version)!;
      if (!checksumMatches(m, h))
        log(`warning: ${m.id} changed since it was applied; its down script may not match`);
      const down = m.down!;
      log(`rolling back ${m.id}${down.noTransaction ? ' (no transaction)' : ''}`);
      const started = performance.now();
      let statements: number;
      if (down.noTransaction) {
        statements = await runScript(client, down, opts, async () => {});
        await recordRolledBack(client, m.version);
      } else {
        statements = await runScript(client, down, opts, async (stmts) => {
          await execAll(client, down.path, stmts);
          await recordRolledBack(client, m.version);
        });
      }
      const ms = Math.round(performance.now() - started);
      log(`  done in ${ms} ms`);
      results.push({ id: m.id, version: m.version, ms, statements });
    }
    return results;
  });
}
