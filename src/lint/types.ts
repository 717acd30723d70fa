import type { RuleId, Severity } from './rules';

export interface Finding {
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column, counted in characters (code points). */
  column: number;
  rule: RuleId;
  severity: Severity;
  /** What this statement does wrong, naming the table / column / index. */
  message: string;
  /** Why it is dangerous on a live table (from the rule table). */
  why: string;
  /** What to write instead (from the rule table). */
  safeAlternative: string;
  /** Concrete expand/contract or cutover steps for this statement, where the lint can propose them. */
  suggestion?: string;
}

/** A finding switched off by a `cutover-lint:ignore` comment, kept so the runner can print it. */
export interface IgnoredFinding extends Finding {
  reason: string;
}

export interface LintResult {
  /** Files linted, in the order they were linted (migration version order). */
  files: string[];
  findings: Finding[];
  ignored: IgnoredFinding[];
  errorCount: number;
  warningCount: number;
}

export type MigrationKind = 'up' | 'down' | 'plain';
