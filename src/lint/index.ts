/** The migration safety lint: the API the runner, the deploy workflow and the CLI call. */
export { lintSql, lintFiles } from './lint';
export type { LintOptions, LintSqlOptions, LintFilesOptions } from './lint';
export { formatFindings, formatResult, OUTPUT_FORMATS } from './format';
export type { OutputFormat } from './format';
export type { Finding, IgnoredFinding, LintResult, MigrationKind } from './types';
export { RULES, ruleMeta, isRuleId } from './rules';
export type { RuleId, RuleMeta, Severity } from './rules';
export { sqlHasNoTransactionDirective, NO_TRANSACTION_DIRECTIVE } from './directives';
export { parseMigrationFileName, orderForLint } from './migration-files';
