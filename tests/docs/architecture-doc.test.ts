import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { stepKinds } from '../../src/steps/schemas';

/** docs/architecture.md's checklists name the files to touch: every one must exist. */
describe('docs/architecture.md', () => {
  const text = readFileSync('docs/architecture.md', 'utf8');

  it('names only files that exist', () => {
    const paths = [
      ...text.matchAll(/`((?:src|activities|workflows|tests|docs)\/[\w./-]+\.(?:ts|md))`/g),
    ]
      .map((m) => m[1]!)
      .filter((p) => !p.includes('<kind>'));
    expect(paths.length).toBeGreaterThan(15);
    expect(paths.filter((p) => !existsSync(p))).toEqual([]);
  });

  it('every step kind has the folder layout the checklist describes', () => {
    for (const kind of stepKinds)
      for (const file of ['schema.ts', 'spec.ts', 'index.ts'])
        expect(existsSync(`src/steps/${kind}/${file}`), `${kind}/${file}`).toBe(true);
  });
});
