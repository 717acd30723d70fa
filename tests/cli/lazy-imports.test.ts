/**
 * `cutover --help` starts about as fast as node itself only while the built CLI's start path
 * imports none of the heavy packages: each command loads what it needs when it runs. One static
 * import in a command module (as src/cli/commands/deploy.ts once had) pulls the Temporal client,
 * the workflows and the AWS SDK into every start and costs seconds. This runs the built CLI with
 * a module resolve hook that reports every package it imports.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/tools';
import { cliPath } from '../support/cli';

const HEAVY = /^(@temporalio\/|@aws-sdk\/|libpg-query|pg$|pg\/|pino|prom-client|tsx|esbuild)/;

const dir = mkdtempSync(join(tmpdir(), 'cutover-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(
  join(dir, 'hooks.mjs'),
  `import { writeSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (!/^(\\.|\\/|node:|file:|data:)/.test(specifier)) writeSync(2, 'imported-package ' + specifier + '\\n');
  return next(specifier, context);
}
`,
);
writeFileSync(
  join(dir, 'register.mjs'),
  `import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
`,
);

/** The packages a run of the built CLI imports, and its exit code. */
function packagesImported(args: string[]): { packages: string[]; code: number | null } {
  const r = spawnSync(
    process.execPath,
    ['--import', pathToFileURL(join(dir, 'register.mjs')).href, cliPath, ...args],
    { cwd: projectRoot, encoding: 'utf8' },
  );
  const packages = [...r.stderr.matchAll(/^imported-package (\S+)$/gm)].map((m) => m[1]!);
  return { packages: [...new Set(packages)], code: r.status };
}

describe('the built CLI loads heavy packages only in the commands that use them', () => {
  it('--help and --version import none of them', () => {
    for (const args of [['--help'], ['--version'], ['deploy', '--help'], ['start', '--help']]) {
      const { packages, code } = packagesImported(args);
      expect(code, args.join(' ')).toBe(0);
      // The hook sees the start path's own packages, so an empty list is not a blind hook.
      expect(packages, args.join(' ')).toContain('commander');
      expect(
        packages.filter((p) => HEAVY.test(p)),
        args.join(' '),
      ).toEqual([]);
    }
  });

  it('lint imports the PostgreSQL parser when it runs', () => {
    const { packages, code } = packagesImported([
      'lint',
      join(projectRoot, 'migrations/0001_create_users.up.sql'),
    ]);
    expect(code).toBe(0);
    expect(packages).toContain('libpg-query');
  });
});
