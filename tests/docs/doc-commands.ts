/**
 * Reads the shell commands out of a Markdown page's ```sh blocks, so tests can check them
 * against the real CLIs (flags that exist, names the workflow defines).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/tools';

export const readDoc = (file: string) => readFileSync(join(projectRoot, file), 'utf8');

/** Every command line of the page's sh blocks: continuations joined, comments dropped, split into words. */
export function shellCommands(markdown: string): string[][] {
  const commands: string[][] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, ' ');
    for (const line of joined.split('\n')) {
      const words = shellWords(line);
      if (words.length) commands.push(words);
    }
  }
  return commands;
}

/** Splits like a POSIX shell for the simple lines docs hold: quotes, comments, no expansion. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      if (end === -1) throw new Error(`unbalanced ${ch} in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** The value after `--flag` (or in `--flag=value`). */
export function flagValue(words: string[], flag: string): string | undefined {
  for (let i = 0; i < words.length; i++) {
    if (words[i] === flag) return words[i + 1];
    if (words[i]!.startsWith(`${flag}=`)) return words[i]!.slice(flag.length + 1);
  }
  return undefined;
}

export function flagsOf(words: string[]): string[] {
  return words.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0]!);
}

/** The subcommand words before the first flag or placeholder, e.g. ['workflow', 'update', 'execute']. */
export function subcommand(words: string[], maxDepth = 3): string[] {
  const path: string[] = [];
  for (const w of words.slice(1)) {
    if (w.startsWith('-') || w.includes('/') || w.includes('<') || path.length === maxDepth) break;
    path.push(w);
  }
  return path;
}

const run = promisify(execFile);
const helpCache = new Map<string, Promise<string>>();

/** `<program> <args> --help` output (stdout + stderr), cached per command. */
export function helpOf(program: string, args: string[]): Promise<string> {
  return outputOf(program, [...args, '--help']);
}

/** `<program> <args>` output (stdout + stderr), cached per command line. */
export function outputOf(program: string, args: string[]): Promise<string> {
  const key = [program, ...args].join(' ');
  let out = helpCache.get(key);
  if (!out) {
    out = run(program, args, { cwd: projectRoot, timeout: 60_000 }).then(
      (r) => r.stdout + r.stderr,
    );
    helpCache.set(key, out);
  }
  return out;
}
