/**
 * docs/ci.md's pipeline is real: it parses as a GitHub Actions workflow, and every `cutover`
 * command it runs exists with every flag it uses, in the pipeline and in the operator's lines.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cliPath } from '../support/cli';
import { flagsOf, helpOf, readDoc, shellCommands, shellWords } from './doc-commands';

const cutoverHelp = (command: string[]) => helpOf(process.execPath, [cliPath, ...command]);

/** The longest prefix of subcommand words that the CLI knows, e.g. ['deploy', 'restore']. */
async function commandOf(words: string[]): Promise<string[]> {
  const path: string[] = [];
  for (const w of words.slice(1)) {
    if (w.startsWith('-') || path.length === 2) break;
    const help = await cutoverHelp([...path, w]);
    if (!new RegExp(`Usage: cutover ${[...path, w].join(' ')}\\b`).test(help)) break;
    path.push(w);
  }
  return path;
}

async function checkCommand(words: string[]): Promise<void> {
  const command = await commandOf(words);
  expect(command.length, `a cutover command in: ${words.join(' ')}`).toBeGreaterThan(0);
  const help = await cutoverHelp(command);
  for (const flag of flagsOf(words))
    expect(help, `cutover ${command.join(' ')} has ${flag}`).toMatch(
      new RegExp(`(^|[\\s,])${flag}(?=[\\s=]|$)`, 'm'),
    );
}

interface Step {
  name?: string;
  run?: string;
  uses?: string;
}

const yamlBlocks = () =>
  [...readDoc('docs/ci.md').matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

const cutoverLines = (run: string) =>
  run
    .split('\n')
    .map((l) => shellWords(l.replace(/\$\{\{[^}]*\}\}/g, 'X')))
    .filter((w) => w[0] === 'npx' && w[1] === 'cutover')
    .map((w) => w.slice(1));

describe('docs/ci.md', () => {
  it('is a GitHub Actions workflow whose steps lint, validate, back up, dry-run, apply, test and check health', () => {
    const wf = parse(yamlBlocks()[0]!) as {
      on: unknown;
      jobs: Record<string, { steps: Step[]; env: Record<string, string> }>;
    };
    const job = Object.values(wf.jobs)[0]!;
    const runs = job.steps.map((s) => s.run ?? '').join('\n');
    for (const step of ['lint', 'validate', 'backup create', 'migrate', 'rollback'])
      expect(runs).toContain(`npx cutover ${step}`);
    expect(runs).toMatch(/migrate --dir migrations --dry-run/);
    expect(runs).toMatch(/curl -fsS/);
    expect(job.env.CUTOVER_BACKUP_TARGET).toMatch(/^s3:\/\//);
    // Credentials come from secrets, never literal values.
    expect(job.env.DATABASE_URL).toMatch(/secrets\./);
    expect(job.env.AWS_SECRET_ACCESS_KEY).toMatch(/secrets\./);
  });

  it('uses only cutover commands and flags the CLI has', async () => {
    const commands = [
      ...yamlBlocks().flatMap((block) => {
        const doc = parse(block) as unknown;
        const steps: Step[] = Array.isArray(doc)
          ? (doc as Step[])
          : Object.values((doc as { jobs: Record<string, { steps: Step[] }> }).jobs).flatMap(
              (j) => j.steps,
            );
        return steps.flatMap((s) => (s.run ? cutoverLines(s.run) : []));
      }),
      ...shellCommands(readDoc('docs/ci.md')).filter((w) => w[0] === 'cutover'),
    ];
    expect(commands.length).toBeGreaterThanOrEqual(12);
    // Each help is a node process; start them together rather than one after another.
    const words = (w: string[]) => w.slice(1, 3).filter((x) => !x.startsWith('-'));
    const prefixes = new Set(
      commands.flatMap((w) => [words(w).slice(0, 1).join(' '), words(w).join(' ')]),
    );
    await Promise.all([...prefixes].map((p) => cutoverHelp(p.split(' '))));
    for (const words of commands) await checkCommand(words);
  });
});
