import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lintFiles, type LintFilesOptions, type LintResult } from '../../src/lint';

export const NO_TX = '-- cutover:no-transaction\n';

/**
 * Lints migration files written to a fresh temp directory, through the same lintFiles path the
 * runner uses. `files` maps file names (e.g. 0002_x.up.sql) to SQL; `context` files are read as
 * already applied.
 */
export async function lintTemp(
  files: Record<string, string>,
  opts: Omit<LintFilesOptions, 'context'> & { context?: Record<string, string> } = {},
): Promise<LintResult> {
  const dir = await mkdtemp(join(tmpdir(), 'cutover-lint-'));
  try {
    const write = async (set: Record<string, string>): Promise<string[]> =>
      Promise.all(
        Object.entries(set).map(async ([name, sql]) => {
          const p = join(dir, name);
          await writeFile(p, sql);
          return p;
        }),
      );
    const context = await write(opts.context ?? {});
    const paths = await write(files);
    return await lintFiles(paths, { ...opts, context });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const rulesOf = (r: LintResult): string[] => r.findings.map((f) => f.rule);
