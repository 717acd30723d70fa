import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { projectRoot } from '../tools';

/** The version in package.json, read at run time so the built CLI and the sources agree. */
export const VERSION = (
  JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }
).version;

/** `--version` (and `-V`) on the program and on every subcommand, so it works wherever typed. */
export function addVersionEverywhere(cmd: Command): void {
  cmd.version(VERSION, '-V, --version', 'print the cutover version');
  for (const sub of cmd.commands) addVersionEverywhere(sub);
}

/** `--verbose` on the program and on every subcommand (options are positional, see main.ts). */
export function addVerboseEverywhere(cmd: Command): void {
  cmd.option('--verbose', 'print stack traces and debug detail on errors');
  for (const sub of cmd.commands) addVerboseEverywhere(sub);
}
