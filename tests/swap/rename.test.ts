/**
 * The rename finish (posts → articles) on real PostgreSQL, its activities called directly: the
 * old name is an updatable view over the new table during the rollback window (writes through
 * either name reach the archive), foreign keys of other tables and the serial sequence follow
 * the new table, a rename-back puts the old table back under its name with every write, and
 * cleanup removes the view. What a rename cannot carry is refused before anything changes.
 * A verify step after a swap or a rename compares the archive with the new table.
 */
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { renameAttempt, renameBackAttempt } from '../../src/steps/rename/rename';
import {
  swapAttempt,
  swapDropArchive,
  swapFinish,
  swapPrepare,
  swapValidateKeys,
  type SwapInput,
} from '../../src/steps/swap/swap';
import { verify } from '../../src/steps/verify/tables';
import { checkPlan, parsePlan, PlanError } from '../../src/plan';
import { offlineProblems } from '../../src/plan/stages';
import type { TestDatabase } from '../support/db';
import { differing, prepare, useSwapDatabase } from './support';

let db: TestDatabase;
let client: pg.Client;

const SCHEMA = `
  DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;
  DROP SCHEMA IF EXISTS cutover CASCADE;
  DO $$ BEGIN CREATE ROLE rename_writer; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
  CREATE TABLE authors (id integer PRIMARY KEY, name text NOT NULL);
  INSERT INTO authors SELECT g, 'a' || g FROM generate_series(1, 5) g;
  CREATE TABLE posts (
    id serial PRIMARY KEY,
    author_id integer NOT NULL REFERENCES authors,
    title text NOT NULL,
    body text NOT NULL DEFAULT ''
  );
  COMMENT ON TABLE posts IS 'blog posts';
  GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO rename_writer;
  INSERT INTO posts (author_id, title) SELECT 1 + g % 5, 'p' || g FROM generate_series(1, 200) g;
  CREATE TABLE comments (
    id serial PRIMARY KEY,
    post_id integer NOT NULL REFERENCES posts ON DELETE CASCADE,
    text text NOT NULL
  );
  INSERT INTO comments (post_id, text) SELECT 1 + g % 200, 'c' || g FROM generate_series(1, 400) g;
`;

const renamePlan = (extra = '') => `name: rename_posts
source: public.posts
target:
  table: articles
  like: source
mapping:
  up: {}
  down: {}
finish: rename
${extra}`;

const ARCHIVE = 'posts_old_test';
const q = async <T extends pg.QueryResultRow = Record<string, unknown>>(
  sql: string,
  p?: unknown[],
) => (await client.query<T>(sql, p)).rows;
const one = async <T extends pg.QueryResultRow>(sql: string, p?: unknown[]): Promise<T> => {
  const rows = await q<T>(sql, p);
  if (rows.length !== 1) throw new Error(`expected one row from ${sql}, got ${rows.length}`);
  return rows[0]!;
};
const relkind = async (name: string) =>
  (
    await one<{ k: string | null }>(
      `SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)) AS k`,
      [name],
    )
  ).k;
const referenced = async () =>
  (
    await one<{ t: string; valid: boolean }>(
      `SELECT confrelid::regclass::text AS t, convalidated AS valid FROM pg_constraint
        WHERE conrelid = 'comments'::regclass AND contype = 'f'`,
    )
  ).t;
const percent = async () =>
  (
    await one<{ p: number }>(
      `SELECT percent_new AS p FROM cutover.routes WHERE migration = 'rename_posts'`,
    )
  ).p;

async function untilDone(attempt: () => Promise<{ done: boolean }>): Promise<void> {
  for (let i = 0; i < 20; i++) if ((await attempt()).done) return;
  throw new Error('never got its locks');
}

useSwapDatabase('rename', (d, c) => {
  db = d;
  client = c;
});
beforeEach(async () => {
  await client.query(SCHEMA);
});

describe('rename: the new table keeps its name, the old name is a view until cleanup', () => {
  it('writes through the old name and the new one reach the archive; a rename-back keeps them all', async () => {
    const plan = await prepare(client, renamePlan());
    const input: SwapInput = {
      change: plan.change,
      archive: ARCHIVE,
      lockTimeoutMs: 2000,
      directions: 'both',
      mode: 'rename',
    };
    await swapPrepare(input);
    await untilDone(() => renameAttempt(input));

    expect(await relkind('posts')).toBe('v');
    expect(await relkind('articles')).toBe('r');
    expect(await relkind(ARCHIVE)).toBe('r');
    expect(await referenced()).toBe('articles');
    expect(await percent()).toBe(100);
    // The view carries the old table's privileges and comment.
    expect(
      await one(
        `SELECT has_table_privilege('rename_writer', 'posts', 'INSERT') AS ins, obj_description('posts'::regclass, 'pg_class') AS c`,
      ),
    ).toEqual({ ins: true, c: 'blog posts' });

    // Old code writes through the view: insert (serial continues), update, delete (cascades
    // through the re-pointed key), and a child row for a post only the new table had first.
    const { id } = await one<{ id: number }>(
      `INSERT INTO posts (author_id, title) VALUES (2, 'through the view') RETURNING id`,
    );
    expect(id).toBe(201);
    await q(`UPDATE posts SET title = 'edited' WHERE id = 5`);
    await q(`DELETE FROM posts WHERE id = 6`);
    await q(`INSERT INTO comments (post_id, text) VALUES ($1, 'on a new post')`, [id]);
    await q(
      `INSERT INTO posts (id, author_id, title) VALUES (5, 1, 'x') ON CONFLICT (id) DO UPDATE SET title = 'upserted'`,
    );
    // New code writes the new name.
    const { id: id2 } = await one<{ id: number }>(
      `INSERT INTO articles (author_id, title) VALUES (3, 'new code') RETURNING id`,
    );
    expect(id2).toBe(202);
    await q(`UPDATE articles SET body = 'b' WHERE id = 7`);
    expect(await one(`SELECT count(*)::int AS n FROM comments WHERE post_id = 6`)).toEqual({
      n: 0,
    });
    expect(await differing(client, `SELECT * FROM articles`, `SELECT * FROM ${ARCHIVE}`)).toBe(0);
    // The child's re-pointed key, and the new table's own key to authors (added before the rename).
    expect(await swapValidateKeys(input)).toEqual([
      'articles.posts_author_id_fkey',
      'comments.comments_post_id_fkey',
    ]);

    // Rollback inside the window: the old table is back under its name with every write.
    const back = await renameBackAttempt(input);
    expect(back).toMatchObject({ done: true, swappedBack: true });
    expect(await relkind('posts')).toBe('r');
    expect(await relkind(ARCHIVE)).toBeNull();
    expect(await referenced()).toBe('posts');
    expect(await percent()).toBe(0);
    expect(
      await q(`SELECT id, title FROM posts WHERE id IN (5, 6, ${id}, ${id2}) ORDER BY id`),
    ).toEqual([
      { id: 5, title: 'upserted' },
      { id, title: 'through the view' },
      { id: id2, title: 'new code' },
    ]);
    expect(await differing(client, `SELECT * FROM articles`, `SELECT * FROM posts`)).toBe(0);
    // The sync runs as before the rename: a write to posts reaches articles.
    await q(`UPDATE posts SET title = 'after rename-back' WHERE id = 8`);
    expect(await one(`SELECT title FROM articles WHERE id = 8`)).toEqual({
      title: 'after rename-back',
    });
    // Undo again is harmless.
    expect(await renameBackAttempt(input)).toMatchObject({ done: true, already: true });
    expect(await swapValidateKeys({ ...input, mode: undefined })).toEqual([
      'comments.comments_post_id_fkey',
    ]);
  });

  it('cleanup removes the view and the sync; the archive drops, the serial key stays with the new table', async () => {
    const plan = await prepare(client, renamePlan());
    const input: SwapInput = {
      change: plan.change,
      archive: ARCHIVE,
      lockTimeoutMs: 2000,
      directions: 'both',
      mode: 'rename',
    };
    await swapPrepare(input);
    await untilDone(() => renameAttempt(input));
    await q(`INSERT INTO posts (author_id, title) VALUES (1, 'before cleanup')`);
    expect(await swapFinish(input)).toEqual({ archive: `public.${ARCHIVE}` });
    expect(await relkind('posts')).toBeNull();
    expect(
      await q(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'cutover_sync%'`),
    ).toEqual([{ n: 0 }]);
    // Past the point of no return the archive no longer follows.
    await q(`INSERT INTO articles (author_id, title) VALUES (1, 'after cleanup')`);
    expect(await one(`SELECT count(*)::int AS n FROM ${ARCHIVE}`)).toEqual({ n: 201 });
    expect(await swapDropArchive(input)).toBe(`public.${ARCHIVE}`);
    expect(await relkind(ARCHIVE)).toBeNull();
    const { id } = await one<{ id: number }>(
      `INSERT INTO articles (author_id, title) VALUES (1, 'x') RETURNING id`,
    );
    expect(id).toBe(203);
    expect(await referenced()).toBe('articles');
  });

  it('refuses what it cannot carry, before anything changes', async () => {
    await q(`CREATE VIEW recent_posts AS SELECT id, title FROM posts WHERE id > 100`);
    await q(`CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER keep_it BEFORE UPDATE ON posts FOR EACH ROW EXECUTE FUNCTION keep()`);
    await q(`CREATE TABLE ${ARCHIVE} (x int)`);
    const report = await checkPlan(
      parsePlan(
        `name: rename_posts
source: public.posts
target:
  table: articles
  like: source
mapping:
  up: { title: "upper(title)" }
  down: {}
finish: rename
stages:
  - name: all
    steps:
      - kind: shadow
      - kind: sync
      - kind: backfill
      - kind: verify
      - { kind: rename, archive: ${ARCHIVE} }
      - kind: cleanup
`,
        'plan.yaml',
      ),
      client,
    );
    expect(report.ok).toBe(false);
    const text = report.problems.map((p) => p.message).join('\n');
    expect(text).toMatch(/view public\.recent_posts: .*use a swap \(finish: swap\)/);
    expect(text).toMatch(/trigger keep_it: .*use a swap/);
    expect(text).toContain('columns title are mapped by an expression');
    expect(text).toContain(`public.${ARCHIVE} already exists`);
    // Nothing was created.
    expect(await relkind('articles')).toBeNull();

    // The archive name taken at the moment of the rename: refused with nothing changed.
    await q(`DROP VIEW recent_posts; DROP TRIGGER keep_it ON posts`);
    const plan = await prepare(client, renamePlan());
    const input: SwapInput = {
      change: plan.change,
      archive: ARCHIVE,
      lockTimeoutMs: 2000,
      directions: 'both',
      mode: 'rename',
    };
    await expect(renameAttempt(input)).rejects.toThrow(
      new RegExp(`public.${ARCHIVE} already exists, so the old table cannot be archived`),
    );
    expect(await relkind('posts')).toBe('r');
    expect(await referenced()).toBe('posts');
    expect(
      await q(
        `SELECT tgrelid::regclass::text AS rel, tgname FROM pg_trigger WHERE tgname LIKE 'cutover_sync_fwd%'`,
      ),
    ).toEqual([{ rel: 'posts', tgname: 'cutover_sync_fwd_rename_posts' }]);
  });
});

describe('rename under concurrent writers (several clients, both names)', () => {
  it('no write fails or goes missing across the rename and the rename-back', async () => {
    const plan = await prepare(client, renamePlan());
    const input: SwapInput = {
      change: plan.change,
      archive: ARCHIVE,
      lockTimeoutMs: 2000,
      directions: 'both',
      mode: 'rename',
    };
    await swapPrepare(input);
    const writers = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        return c;
      }),
    );
    let stop = false;
    const failures: string[] = [];
    const inserted: number[][] = writers.map(() => []);
    // Writers 0 and 1 use the old name (a table, then the view, then the table again), 2 and 3
    // the new one; each inserts, updates and deletes its own rows, committing one by one.
    const load = writers.map(async (c, w) => {
      const table = w < 2 ? 'posts' : 'articles';
      for (let i = 0; !stop; i++) {
        try {
          const r = await c.query<{ id: number }>(
            `INSERT INTO ${table} (author_id, title) VALUES ($1, $2) RETURNING id`,
            [1 + (i % 5), `w${w}-${i}`],
          );
          inserted[w]!.push(r.rows[0]!.id);
          await c.query(`UPDATE ${table} SET body = $2 WHERE id = $1`, [
            r.rows[0]!.id,
            `edited ${i}`,
          ]);
          if (i % 3 === 0) {
            const gone = inserted[w]!.shift()!;
            await c.query(`DELETE FROM ${table} WHERE id = $1`, [gone]);
          }
        } catch (err) {
          failures.push(
            `${table}: ${(err as Error).message} ${(err as { detail?: string }).detail ?? ''} ${(err as { where?: string }).where ?? ''}`,
          );
        }
      }
    });
    const written = () => inserted.reduce((n, ids) => n + ids.length, 0);
    const until = async (n: number) => {
      while (written() < n) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      await until(40);
      await untilDone(() => renameAttempt(input));
      const afterRename = written();
      await until(afterRename + 40);
      expect(await relkind('posts')).toBe('v');
      expect((await renameBackAttempt(input)).done).toBe(true);
      await until(written() + 40);
    } finally {
      stop = true;
      await Promise.all(load);
      await Promise.all(writers.map((c) => c.end()));
    }
    expect(failures).toEqual([]);
    expect(await relkind('posts')).toBe('r');
    // Row for row: the old table equals the new one, and holds every write acknowledged.
    expect(await differing(client, `SELECT * FROM posts`, `SELECT * FROM articles`)).toBe(0);
    const kept = inserted.flat();
    expect(
      await one(`SELECT count(*)::int AS n FROM posts WHERE id = ANY ($1::int[])`, [kept]),
    ).toEqual({ n: kept.length });
    expect(await one(`SELECT count(*)::int AS n FROM posts WHERE title ~ '^w[0-3]-'`)).toEqual({
      n: kept.length,
    });
  });
});

describe('cleanup after a rename under writers of the old name', () => {
  it('drops the view without a deadlock: the writers see the name go, nothing else fails', async () => {
    const plan = await prepare(client, renamePlan());
    const input: SwapInput = {
      change: plan.change,
      archive: ARCHIVE,
      lockTimeoutMs: 2000,
      directions: 'both',
      mode: 'rename',
    };
    await swapPrepare(input);
    await untilDone(() => renameAttempt(input));
    const writers = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        return c;
      }),
    );
    let stop = false;
    const failures: string[] = [];
    const acknowledged: number[] = [];
    const load = writers.map(async (c, w) => {
      const table = w < 2 ? 'posts' : 'articles';
      for (let i = 0; !stop; i++) {
        try {
          const r = await c.query<{ id: number }>(
            `INSERT INTO ${table} (author_id, title) VALUES (1, $1) RETURNING id`,
            [`w${w}-${i}`],
          );
          acknowledged.push(r.rows[0]!.id);
          await c.query(`UPDATE ${table} SET body = 'x' WHERE id = $1`, [r.rows[0]!.id]);
        } catch (err) {
          failures.push(`${table}: ${(err as { code?: string }).code} ${(err as Error).message}`);
          if (table === 'posts') await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    try {
      while (acknowledged.length < 60) await new Promise((r) => setTimeout(r, 20));
      await swapFinish(input);
      const at = acknowledged.length;
      while (acknowledged.length < at + 40) await new Promise((r) => setTimeout(r, 20));
    } finally {
      stop = true;
      await Promise.all(load);
      await Promise.all(writers.map((c) => c.end()));
    }
    // Old code loses the old name at cleanup (that is what cleanup is for), and only that.
    expect([...new Set(failures)]).toEqual(
      failures.length ? ['posts: 42P01 relation "posts" does not exist'] : [],
    );
    expect(
      await one(`SELECT count(*)::int AS n FROM articles WHERE id = ANY ($1::int[])`, [
        acknowledged,
      ]),
    ).toEqual({ n: acknowledged.length });
  });
});

describe('a verify step after the finish compares the archive with the new table', () => {
  for (const mode of ['swap', 'rename'] as const)
    it(`after a ${mode}: equal tables pass, a row changed in the archive alone fails`, async () => {
      const plan = await prepare(client, renamePlan());
      const input: SwapInput = {
        change: plan.change,
        archive: ARCHIVE,
        lockTimeoutMs: 2000,
        directions: 'both',
        ...(mode === 'rename' ? { mode } : {}),
      };
      await swapPrepare(input);
      await untilDone(() => (mode === 'rename' ? renameAttempt(input) : swapAttempt(input)));
      await expect(verify({ change: plan.change })).resolves.toMatchObject({ ok: true });
      // The archive has no trigger of its own after the finish: this write reaches it alone.
      await q(`UPDATE ${ARCHIVE} SET title = 'only in the archive' WHERE id = 9`);
      const err = await verify({ change: plan.change }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        new RegExp(
          `verification of public.${ARCHIVE} → public.${mode === 'swap' ? 'posts' : 'articles'} failed`,
        ),
      );
      expect((err as Error).message).toContain('id=9 (different)');
    });
});

describe('a plan says it is a rename, and the stage rules hold for it', () => {
  const stages = (steps: string) => `stages:
  - name: all
    steps:
      - kind: shadow
      - kind: sync
      - kind: backfill
      - kind: verify
${steps}`;
  /** The plan loader's problems (it runs the stage rules and throws them all at once). */
  const problems = (yaml: string): string[] => {
    try {
      parsePlan(yaml, 'p.yaml');
      return [];
    } catch (err) {
      if (!(err instanceof PlanError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
  };

  it('finish: rename puts a rename step where the default stages have the swap', () => {
    const kinds = (yaml: string) =>
      offlineProblems(parsePlan(yaml, 'p.yaml')).stages.map((st) => st.steps.map((x) => x.kind));
    const renamed = kinds(renamePlan());
    expect(renamed.flat()).toContain('rename');
    expect(renamed.flat()).not.toContain('swap');
    expect(kinds(renamePlan().replace('finish: rename\n', '')).flat()).toContain('swap');
    expect(problems(renamePlan())).toEqual([]);
  });

  it('refuses both finishes, a finish its stages contradict, a route after the rename, cleanup before it', () => {
    expect(
      problems(
        renamePlan(stages('      - kind: swap\n      - kind: rename\n      - kind: cleanup\n')),
      ),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^stages: a plan finishes with a "swap" or a "rename", not both/),
        expect.stringMatching(/^finish: finish: rename but the stages have a "swap" step/),
      ]),
    );
    expect(
      problems(renamePlan(stages('      - kind: rename\n      - { kind: route, percent: 50 }\n'))),
    ).toEqual([
      expect.stringMatching(
        /^stages: a "route" step after the "rename": the rename sends every key to the new table/,
      ),
    ]);
    expect(problems(renamePlan(stages('      - kind: cleanup\n      - kind: rename\n')))).toEqual([
      expect.stringMatching(/the "cleanup" step must come after the "rename"/),
    ]);
    expect(problems(renamePlan(stages('      - kind: swap\n')))).toEqual([
      expect.stringMatching(/^finish: finish: rename but the stages have a "swap" step/),
    ]);
    expect(
      problems(
        renamePlan(stages('      - kind: rename\n')).replace('finish: rename', 'finish: swap'),
      ),
    ).toEqual([expect.stringMatching(/^finish: finish: swap but the stages have a "rename" step/)]);
    expect(problems(renamePlan().replace('finish: rename', 'finish: later'))).toEqual([
      'finish: must be swap or rename',
    ]);
  });
});
