/**
 * The runbook's `cutover` commands are real: each command exists and every flag it uses is one
 * that command's --help lists; the start options table matches `cutover start --help`.
 */
import { describe, expect, it } from 'vitest';
import { cliPath } from '../support/cli';
import { flagsOf, helpOf, readDoc, shellCommands } from './doc-commands';

const GROUPS = new Set(['plan', 'backup']);

/** ['cutover', 'backup', 'restore', 'id', '--force'] → ['backup', 'restore']. */
function cutoverCommand(words: string[]): string[] {
  return GROUPS.has(words[1]!) ? words.slice(1, 3) : words.slice(1, 2);
}

const cutoverHelp = (command: string[]) => helpOf(process.execPath, [cliPath, ...command]);

async function checkCommands(file: string): Promise<number> {
  const commands = shellCommands(readDoc(file))
    .map((w) => (w[0] === 'node' && w[1] === 'bin/cutover.js' ? ['cutover', ...w.slice(2)] : w))
    .filter((w) => w[0] === 'cutover');
  // Each help is a node process; start them together rather than one after another.
  await Promise.all(commands.map((w) => cutoverHelp(cutoverCommand(w))));
  for (const words of commands) {
    const command = cutoverCommand(words);
    const help = await cutoverHelp(command);
    expect(help, `cutover ${command.join(' ')} exists`).toMatch(
      new RegExp(`Usage: cutover ${command.join(' ')}\\b`),
    );
    for (const flag of flagsOf(words))
      expect(help, `cutover ${command.join(' ')} has ${flag}`).toMatch(
        new RegExp(`(^|[\\s,])${flag}(?=[\\s=]|$)`, 'm'),
      );
  }
  return commands.length;
}

describe('docs/operations.md', () => {
  it('uses only commands and flags the CLI has', async () => {
    expect(await checkCommands('docs/operations.md')).toBeGreaterThan(15);
  });

  it('lists the options of `cutover start` with their real defaults', async () => {
    const help = await cutoverHelp(['start']);
    const rows = readDoc('docs/operations.md')
      .split('\n')
      .filter((l) => l.startsWith('| `--'));
    expect(rows.length).toBeGreaterThanOrEqual(6);
    const documented = new Set<string>();
    for (const row of rows) {
      const [option, defaultValue] = row
        .split('|')
        .slice(1, 3)
        .map((c) => c.trim().replace(/`/g, ''));
      const flag = option!.split(' ')[0]!;
      documented.add(flag);
      expect(help, flag).toMatch(new RegExp(`^\\s+${flag}\\b`, 'm'));
      if (defaultValue && defaultValue !== 'none' && defaultValue !== 'off')
        expect(help, `${flag} default ${defaultValue}`).toMatch(
          new RegExp(`${flag}[\\s\\S]*?default: "?${defaultValue}"?\\)`),
        );
    }
    // Every option of `start` (but --help and --verbose, which every command has) is in the table.
    const all = [...help.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]!);
    for (const flag of all.filter((f) => f !== '--help' && f !== '--verbose'))
      expect(documented).toContain(flag);
  });
});

describe('docs/temporal.md', () => {
  it('uses only cutover commands and flags the CLI has', async () => {
    expect(await checkCommands('docs/temporal.md')).toBeGreaterThan(0);
  });
});
