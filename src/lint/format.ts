import type { Finding, LintResult } from './types';

export type OutputFormat = 'text' | 'json' | 'github';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['text', 'json', 'github'];

export function formatFindings(findings: Finding[], format: OutputFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(findings, null, 2);
    case 'github':
      return findings.map(githubAnnotation).join('\n');
    case 'text':
      return findings.map(textFinding).join('\n\n');
  }
}

/** The whole result, as the CLI prints it (json adds the ignored findings and the counts). */
export function formatResult(result: LintResult, format: OutputFormat): string {
  if (format === 'json') return JSON.stringify(result, null, 2);
  const body = formatFindings(result.findings, format);
  if (format === 'github') return body;
  const summary =
    `${result.errorCount} error(s), ${result.warningCount} warning(s) in ${result.files.length} file(s)` +
    (result.ignored.length ? `; ${result.ignored.length} ignored with a reason` : '');
  return body ? `${body}\n\n${summary}` : summary;
}

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

function textFinding(f: Finding): string {
  const lines = [
    `${f.file}:${f.line}:${f.column}: ${f.severity} [${f.rule}] ${f.message}`,
    indent(`why: ${f.why}`, '    '),
    indent(`instead: ${f.safeAlternative}`, '    '),
  ];
  if (f.suggestion) lines.push(indent(f.suggestion, '    | '));
  return lines.join('\n');
}

// GitHub workflow commands: data escapes % CR LF; property values also escape : and ,.
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}
function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

function githubAnnotation(f: Finding): string {
  const props = [
    `file=${escapeProperty(f.file)}`,
    `line=${f.line}`,
    `col=${f.column}`,
    `title=${escapeProperty(`cutover lint: ${f.rule}`)}`,
  ].join(',');
  const text = [f.message, `Why: ${f.why}`, `Instead: ${f.safeAlternative}`, f.suggestion]
    .filter(Boolean)
    .join('\n');
  return `::${f.severity === 'error' ? 'error' : 'warning'} ${props}::${escapeData(text)}`;
}
