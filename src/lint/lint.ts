import { migrationFileKind, readInputFile } from '../input/files';
import { tableKey } from './ast';
import { checkStatement, type FileContext } from './checks';
import {
  sqlHasNoTransactionDirective,
  parseIgnoreDirectives,
  statementForComment,
  type IgnoreDirective,
} from './directives';
import { migrationKind, orderForLint, parseMigrationFileName } from './migration-files';
import { ensureParser, parseSql } from './parser';
import { SourceText } from './positions';
import { ruleMeta, type RuleId } from './rules';
import { SchemaState } from './schema-state';
import type { Finding, IgnoredFinding, LintResult, MigrationKind } from './types';

export interface LintOptions {
  /** server_version_num of the target (e.g. 150004). Unknown: assume a modern server. */
  serverVersion?: number;
  /** The runner sets lock_timeout before each migration (its default). Default true. */
  runnerSetsLockTimeout?: boolean;
}

export interface LintSqlOptions extends LintOptions {
  file: string;
  /** The runner wraps the file in one transaction (false under `-- cutover:no-transaction`). */
  transactional: boolean;
  /** up / down / plain; default from the file name (`*.down.sql` is a down script). */
  kind?: MigrationKind;
}

export interface LintFilesOptions extends LintOptions {
  /**
   * Migrations already applied where this lint's verdict will run (read for context only: what
   * they create counts as existing, their deprecation markers count). Not reported on.
   */
  context?: string[];
}

interface FileOutcome {
  findings: Finding[];
  ignored: IgnoredFinding[];
}

interface LintFileInput {
  file: string;
  sql: string;
  kind: MigrationKind;
  /** Explicit (lintSql) or read from the `-- cutover:no-transaction` directive (lintFiles). */
  transactional: boolean | 'from-directive';
  fileIndex: number;
  applied: boolean;
}

/** Lints one migration's SQL on its own. Returns the findings not switched off by an ignore. */
export async function lintSql(sql: string, opts: LintSqlOptions): Promise<Finding[]> {
  await ensureParser();
  const out = lintOne(
    {
      file: opts.file,
      sql,
      kind: opts.kind ?? migrationKind(opts.file),
      transactional: opts.transactional,
      fileIndex: 0,
      applied: false,
    },
    new SchemaState(),
    opts,
  );
  return out.findings;
}

/**
 * Lints a set of migration files as one deployment: files are taken in version order (up
 * scripts in order, each down script against the state right after its up script), and a
 * table created earlier in the set counts as new. Transactional or not comes from the
 * `-- cutover:no-transaction` directive.
 */
export async function lintFiles(paths: string[], opts: LintFilesOptions = {}): Promise<LintResult> {
  await ensureParser();
  const state = new SchemaState();
  for (const file of orderForLint(opts.context ?? [])) {
    lintOne(await input(file, -1, true), state, opts);
  }
  const ordered = orderForLint(paths);
  const findings: Finding[] = [];
  const ignored: IgnoredFinding[] = [];
  const snapshots = new Map<number, SchemaState>();
  for (const [i, file] of ordered.entries()) {
    const inp = await input(file, i, false);
    const version = parseMigrationFileName(file)?.version;
    let fileState = state;
    if (inp.kind === 'down') {
      // A down script runs right after its up script, never before later ups: lint it against
      // a copy of the state at that point so its drops do not hide later files' problems.
      fileState =
        (version !== undefined ? snapshots.get(version) : undefined)?.clone() ?? state.clone();
    }
    const out = lintOne(inp, fileState, opts);
    if (inp.kind === 'up' && version !== undefined) snapshots.set(version, state.clone());
    findings.push(...out.findings);
    ignored.push(...out.ignored);
  }
  return {
    files: ordered,
    findings,
    ignored,
    errorCount: findings.filter((f) => f.severity === 'error').length,
    warningCount: findings.filter((f) => f.severity === 'warning').length,
  };
}

async function input(file: string, fileIndex: number, applied: boolean): Promise<LintFileInput> {
  // The runner's reader: same size limit, binary refused, BOM stripped (as the runner sends it).
  const { text: sql } = readInputFile(file, migrationFileKind);
  return {
    file,
    sql,
    kind: migrationKind(file),
    transactional: 'from-directive',
    fileIndex,
    applied,
  };
}

function lintOne(inp: LintFileInput, state: SchemaState, opts: LintOptions): FileOutcome {
  const src = new SourceText(inp.sql);
  const findings: Finding[] = [];
  const ignored: IgnoredFinding[] = [];
  const make = (rule: RuleId, byte: number, message: string, suggestion?: string): Finding => {
    const meta = ruleMeta(rule);
    const pos = src.positionOfByte(byte);
    return {
      file: inp.file,
      line: pos.line,
      column: pos.column,
      rule,
      severity: meta.severity,
      message,
      why: meta.why,
      safeAlternative: meta.safeAlternative,
      ...(suggestion ? { suggestion } : {}),
    };
  };

  const parsed = parseSql(inp.sql, src.bytes.length);
  if (!parsed.ok) {
    if (inp.applied) return { findings, ignored };
    const byte = parsed.cursor !== undefined ? src.byteOfCodePoint(parsed.cursor) : 0;
    findings.push(make('syntax-error', byte, parsed.message));
    return { findings, ignored };
  }
  const { statements, comments } = parsed;
  const transactional =
    inp.transactional === 'from-directive'
      ? !sqlHasNoTransactionDirective(inp.sql)
      : inp.transactional;

  const { ignores, problems } = parseIgnoreDirectives(comments);
  if (!inp.applied) {
    for (const p of problems) findings.push(make('invalid-ignore', p.at, p.message));
  }
  const fileIgnores = ignores.filter((d) => d.scope === 'file');
  const stmtIgnores = new Map<number, IgnoreDirective[]>();
  for (const d of ignores.filter((x) => x.scope === 'statement')) {
    const i = statementForComment(d.at, statements, (b) => src.positionOfByte(b).line);
    if (i === -1) {
      findings.push(
        make('invalid-ignore', d.at, 'cutover-lint:ignore is followed by no statement'),
      );
      continue;
    }
    stmtIgnores.set(i, [...(stmtIgnores.get(i) ?? []), d]);
  }

  const viewsCreated = new Set<string>();
  for (const s of statements) {
    const n = s.raw.stmt;
    if (n && 'ViewStmt' in n) viewsCreated.add(tableKey(n.ViewStmt.view));
  }
  const ctx: FileContext = {
    kind: inp.kind,
    transactional,
    serverVersion: opts.serverVersion,
    runnerSetsLockTimeout: opts.runnerSetsLockTimeout ?? true,
    fileIndex: inp.fileIndex,
    applied: inp.applied,
    viewsCreated,
    lockTimeoutSet: false,
    lockTimeoutReported: false,
  };
  statements.forEach((s, i) => {
    if (!s.raw.stmt) return;
    checkStatement(s.raw.stmt, s.start, ctx, state, (rule, byte, message, suggestion) => {
      if (inp.applied) return;
      const f = make(rule, byte, message, suggestion);
      const by = [...(stmtIgnores.get(i) ?? []), ...fileIgnores].find((d) =>
        d.rules.includes(rule),
      );
      if (by) ignored.push({ ...f, reason: by.reason });
      else findings.push(f);
    });
  });
  findings.sort((a, b) => a.line - b.line || a.column - b.column);
  return { findings, ignored };
}
