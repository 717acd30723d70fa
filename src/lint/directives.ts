import type { Comment, ParsedStatement } from './parser';
import { isRuleId, type RuleId } from './rules';

/**
 * Comment directives the lint understands:
 *
 *   -- cutover:no-transaction      (one of the first 5 lines: the runner runs statements one by one)
 *   -- cutover-lint:ignore <rule>[, <rule>] -- <reason>       (the statement it precedes, or
 *                                                     the one it trails on the same line)
 *   -- cutover-lint:ignore-file <rule>[, <rule>] -- <reason>  (the whole file)
 *
 * `/* ... *\/` comments work the same way. The reason is mandatory and an ignore naming an
 * unknown rule is rejected: both become an `invalid-ignore` finding that cannot be ignored.
 */
export const NO_TRANSACTION_DIRECTIVE = 'cutover:no-transaction';
const LINT_PREFIX = 'cutover-lint:';

export interface IgnoreDirective {
  scope: 'statement' | 'file';
  rules: RuleId[];
  reason: string;
  /** Byte offset of the comment. */
  at: number;
}

export interface DirectiveProblem {
  at: number;
  message: string;
}

function commentBody(c: Comment): string {
  const t = c.text;
  if (t.startsWith('--')) return t.slice(2).trim();
  return t.replace(/^\/\*/, '').replace(/\*\/$/, '').trim();
}

/**
 * Exactly the runner's rule, from the runner (src/migrate/files.ts): the lint must agree with
 * it, or CONCURRENTLY would pass the lint and then fail inside the runner's transaction.
 */
export { sqlHasNoTransactionDirective } from '../migrate/files';

export function parseIgnoreDirectives(comments: Comment[]): {
  ignores: IgnoreDirective[];
  problems: DirectiveProblem[];
} {
  const ignores: IgnoreDirective[] = [];
  const problems: DirectiveProblem[] = [];
  for (const c of comments) {
    const body = commentBody(c);
    if (!body.startsWith(LINT_PREFIX)) continue;
    const m = /^cutover-lint:(\S+)\s*(.*)$/s.exec(body);
    const verb = m?.[1] ?? '';
    if (verb !== 'ignore' && verb !== 'ignore-file') {
      problems.push({
        at: c.start,
        message: `unknown lint directive "${LINT_PREFIX}${verb}": use ${LINT_PREFIX}ignore or ${LINT_PREFIX}ignore-file`,
      });
      continue;
    }
    const rest = m?.[2] ?? '';
    const sep = rest.indexOf('--');
    const ruleText = (sep === -1 ? rest : rest.slice(0, sep)).trim();
    const reason = sep === -1 ? '' : rest.slice(sep + 2).trim();
    const names = ruleText.split(/[\s,]+/).filter(Boolean);
    if (names.length === 0) {
      problems.push({
        at: c.start,
        message: `${LINT_PREFIX}${verb} names no rule: write ${LINT_PREFIX}${verb} <rule> -- <reason>`,
      });
      continue;
    }
    const unknown = names.filter((n) => !isRuleId(n));
    if (unknown.length > 0) {
      problems.push({
        at: c.start,
        message: `${LINT_PREFIX}${verb} names unknown rule(s): ${unknown.join(', ')}`,
      });
      continue;
    }
    const unignorable = names.filter((n) => n === 'syntax-error' || n === 'invalid-ignore');
    if (unignorable.length > 0) {
      problems.push({ at: c.start, message: `${unignorable.join(', ')} cannot be ignored` });
      continue;
    }
    if (reason.length === 0) {
      problems.push({
        at: c.start,
        message: `${LINT_PREFIX}${verb} ${names.join(', ')} has no reason: add "-- <why this is safe here>" after the rule names`,
      });
      continue;
    }
    ignores.push({
      scope: verb === 'ignore' ? 'statement' : 'file',
      rules: names as RuleId[],
      reason,
      at: c.start,
    });
  }
  return { ignores, problems };
}

/**
 * Which statement a per-statement ignore belongs to: the one it sits inside, else the one it
 * trails on the same line (`DROP TABLE t; -- cutover-lint:ignore ...`), else the next one.
 * Returns -1 when it precedes no statement.
 */
export function statementForComment(
  at: number,
  statements: ParsedStatement[],
  lineOf: (byte: number) => number,
): number {
  const inside = statements.findIndex((s) => s.start <= at && at < s.end);
  if (inside !== -1) return inside;
  const line = lineOf(at);
  for (let i = statements.length - 1; i >= 0; i--) {
    const s = statements[i]!;
    if (s.end <= at) {
      if (lineOf(s.end) === line) return i;
      break;
    }
  }
  return statements.findIndex((s) => s.start > at);
}
