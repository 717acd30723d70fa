/**
 * Benchmark figures on disk: bench/results/<date>.json and .md. Several benchmark sections
 * (this backfill one, others to come) each merge their figures into the day's file, so one
 * file per day holds everything measured that day, and a later run of a section replaces only
 * that section's figures.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';

export interface Figure {
  /** null when this run could not measure it (the note says why). */
  value: number | null;
  unit: string;
  /** The target for the figure, when it has one: the least a ratio must reach. */
  target?: number;
  /** A target that is a ceiling instead (a time that must stay under it). */
  targetMax?: number;
  /** Each side-by-side repetition, when repeated. */
  runs?: number[];
  note?: string;
}

export interface SectionResult {
  postgres: string;
  rows: number;
  repeat: number;
  quick: boolean;
  figures: Record<string, Figure>;
  log: string[];
}

interface ResultsFile {
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGb: number; platform: string; node: string };
  /** Figure name → figure, across sections: the fixed keys the issue names. */
  figures: Record<string, Figure & { section: string }>;
  sections: Record<string, Omit<SectionResult, 'figures'> & { at: string }>;
}

export const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const DIR = join(import.meta.dirname, 'results');

function machine(): ResultsFile['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
  };
}

const show = (f: Figure) =>
  f.value === null
    ? 'not measured'
    : f.unit === 'ratio'
      ? `${f.value.toFixed(2)}×`
      : // Seconds keep their tenth: recovery times are a few seconds.
        `${f.unit === 's' ? f.value.toFixed(1) : Math.round(f.value).toLocaleString('en-US')} ${f.unit}`;

function markdown(r: ResultsFile): string {
  const rows = Object.entries(r.figures).map(([k, f]) => {
    const target =
      f.target !== undefined
        ? `≥ ${f.target}×`
        : f.targetMax !== undefined
          ? `< ${f.targetMax} ${f.unit}`
          : '';
    const met =
      f.value === null
        ? ''
        : f.target !== undefined
          ? f.value >= f.target
            ? 'yes'
            : 'no'
          : f.targetMax !== undefined
            ? f.value < f.targetMax
              ? 'yes'
              : 'no'
            : '';
    const runs =
      f.runs && f.runs.length > 1
        ? f.runs
            .map((x) => (f.unit === 'ratio' ? x.toFixed(2) : Math.round(x).toLocaleString('en-US')))
            .join(', ')
        : '';
    return `| \`${k}\` | ${show(f)} | ${target} | ${met} | ${runs} | ${f.note ?? ''} |`;
  });
  const sections = Object.entries(r.sections).map(
    ([name, s]) =>
      `### ${name}\n\n${s.at}, PostgreSQL ${s.postgres}, ${s.rows.toLocaleString('en-US')} rows, ${s.repeat} repetition(s)${s.quick ? ', BENCH_QUICK' : ''}\n\n\`\`\`\n${s.log.join('\n')}\n\`\`\``,
  );
  const m = r.machine;
  return `# Benchmark ${r.date}

Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.platform}, Node ${m.node}.
Ratios are measured side by side in one run; with repetitions, the median.

| figure | value | target | met | runs | what |
| ------ | ----- | ------ | --- | ---- | ---- |
${rows.join('\n')}

${sections.join('\n\n')}
`;
}

/** Merges one section's figures into today's results files; returns their paths. */
export async function recordResults(section: string, result: SectionResult): Promise<string[]> {
  const date = new Date().toISOString().slice(0, 10);
  const json = join(DIR, `${date}.json`);
  const md = join(DIR, `${date}.md`);
  await mkdir(DIR, { recursive: true });
  let file: ResultsFile = { date, machine: machine(), figures: {}, sections: {} };
  try {
    file = JSON.parse(await readFile(json, 'utf8')) as ResultsFile;
  } catch {
    // first section of the day
  }
  file.machine = machine();
  for (const [k, f] of Object.entries(file.figures))
    if (f.section === section) delete file.figures[k];
  for (const [k, f] of Object.entries(result.figures)) file.figures[k] = { ...f, section };
  const { figures: _figures, ...rest } = result;
  file.sections[section] = { ...rest, at: new Date().toISOString() };
  // Written as prettier would, so `prettier --check .` stays clean after a benchmark run.
  const prettier = await import('prettier');
  const style = async (path: string, text: string) =>
    prettier.format(text, { ...(await prettier.resolveConfig(path)), filepath: path });
  await writeFile(json, await style(json, JSON.stringify(file, null, 2)));
  await writeFile(md, await style(md, markdown(file)));
  return [json, md];
}
