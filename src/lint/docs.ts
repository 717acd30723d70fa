import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { RULES } from './rules';

/**
 * docs/lint-rules.md holds the rule table generated from RULES between these markers; a test
 * fails when the two drift. Regenerate with: node --import tsx src/lint/docs.ts
 */
export const DOCS_PATH = fileURLToPath(new URL('../../docs/lint-rules.md', import.meta.url));
export const TABLE_BEGIN = '<!-- rules:begin (generated from src/lint/rules.ts) -->';
export const TABLE_END = '<!-- rules:end -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderRulesTable(): string {
  const rows = RULES.map(
    (r) =>
      `| \`${r.id}\` | ${r.severity} | ${cell(r.title)} | ${cell(r.why)} | ${cell(r.safeAlternative)} |`,
  );
  return [
    '| Rule | Severity | Catches | Why it is dangerous | Safe alternative |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The generated part of a docs file, or undefined when the markers are missing. */
export function tableSection(doc: string): string | undefined {
  const b = doc.indexOf(TABLE_BEGIN);
  const e = doc.indexOf(TABLE_END);
  if (b === -1 || e === -1 || e < b) return undefined;
  return doc.slice(b + TABLE_BEGIN.length, e).trim();
}

/**
 * A markdown table as rows of trimmed cells, so a formatter re-padding the columns (prettier
 * does) is not a difference.
 */
export function tableCells(table: string): string[][] {
  return table
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, l.endsWith('|') ? -1 : undefined)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim())
        .map((c) => (/^:?-+:?$/.test(c) ? '---' : c)),
    );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const doc = await readFile(DOCS_PATH, 'utf8');
  const b = doc.indexOf(TABLE_BEGIN);
  const e = doc.indexOf(TABLE_END);
  if (b === -1 || e === -1)
    throw new Error(`${DOCS_PATH} lacks the ${TABLE_BEGIN} / ${TABLE_END} markers`);
  await writeFile(
    DOCS_PATH,
    `${doc.slice(0, b + TABLE_BEGIN.length)}\n${renderRulesTable()}\n${doc.slice(e)}`,
  );
}
