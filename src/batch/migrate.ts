/**
 * Durable batch data migrations (the spec's batchMigrate, made safe for big tables): the source
 * is walked by key in batches; each batch is applied and its checkpoint row is written in the
 * SAME transaction, so a batch is applied exactly once whatever crashes (the heartbeat only
 * tells a new worker where to look). A batch that fails is retried item by item, each under a
 * savepoint; an item that keeps failing goes to a dead-letter table with its key and error, and
 * the rest of the batch is applied. Key ranges run in parallel up to a concurrency limit. A dry
 * run applies every batch and rolls it back, reporting what would fail.
 */
import pg from 'pg';
import { UserError } from '../errors';
import { ensureBatchSchema, DEAD_LETTERS, CHECKPOINTS } from './schema';
import { checkIdent, keyColumns, qi, qt, tableRef, type TableRef } from '../expand/common';

export interface BatchMigrationSpec {
  /** Names the run's checkpoints and dead letters. */
  name: string;
  /** The source table, walked by its key; `where` narrows it (SQL over its columns). */
  source: { table: string; where?: string };
  /**
   * Per-row SQL: the destination table and, for each of its columns, an SQL expression over the
   * source row (e.g. `data->>'city'`). Rows are upserted by the destination's key.
   */
  target?: { table: string; columns: Record<string, string> };
  /**
   * Per-batch module on the worker instead of `target`: exports `migrate(client, rows)` that
   * applies the rows (source rows as objects) inside the transaction it is given.
   */
  module?: string;
  batchSize?: number;
  /** Key ranges copied at once (default 1). */
  concurrency?: number;
  /** Attempts per failing item before it is dead-lettered (default 3). */
  itemAttempts?: number;
  dryRun?: boolean;
}

export interface BatchProgress {
  itemsDone: number;
  batches: number;
  deadLetters: number;
  /** Dry run only: the first failures seen, with their keys. */
  failures: Array<{ key: string; error: string }>;
}

export interface BatchHooks {
  onProgress?: (p: BatchProgress) => void;
  /** Called before each batch: throw to stop (cancellation), await to throttle. */
  beforeBatch?: () => Promise<void> | void;
}

type Migrator = (client: pg.ClientBase, rows: Record<string, unknown>[]) => Promise<void>;

interface Plan {
  source: TableRef;
  key: string[];
  where: string;
  apply: (client: pg.ClientBase, keys: unknown[][]) => Promise<void>;
}

async function loadMigrator(path: string): Promise<Migrator> {
  const mod = (await import(path)) as { migrate?: Migrator; default?: { migrate?: Migrator } };
  const fn = mod.migrate ?? mod.default?.migrate;
  if (typeof fn !== 'function')
    throw new UserError(`module ${path} does not export migrate(client, rows)`);
  return fn;
}

/** Compiles the spec against the catalog (read-only) into what each batch runs. */
export async function planBatchMigration(
  client: pg.ClientBase,
  spec: BatchMigrationSpec,
): Promise<Plan> {
  checkIdent('migration name', spec.name);
  if (!spec.target === !spec.module)
    throw new UserError(`batch migration ${spec.name}: give exactly one of target and module`);
  const source = tableRef(spec.source.table);
  const key = await keyColumns(client, source);
  const where = spec.source.where ? `(${spec.source.where})` : 'true';
  const keyTypes = await client.query<{ t: string }>(
    // text[] throughout: PostgreSQL 13's array_position has no name[]/text variant.
    `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute
      WHERE attrelid = to_regclass($1) AND attname::text = ANY($2::text[])
      ORDER BY array_position($2::text[], attname::text)`,
    [qt(source), key],
  );
  const typed = key.map((k, i) => `s.${qi(k)} = k.c${i}::${keyTypes.rows[i]!.t}`).join(' AND ');
  const keysFrom = `(SELECT ${key.map((_, i) => `unnest($${i + 1}::text[]) AS c${i}`).join(', ')}) k`;
  const columns = (keys: unknown[][]) => key.map((_, i) => keys.map((row) => String(row[i])));

  if (spec.target) {
    const target = tableRef(spec.target.table);
    const cols = Object.keys(spec.target.columns);
    if (!cols.length) throw new UserError(`batch migration ${spec.name}: target.columns is empty`);
    cols.forEach((c) => checkIdent('target column', c));
    const targetKey = await keyColumns(client, target);
    const missingKey = targetKey.filter((k) => !cols.includes(k));
    if (missingKey.length)
      throw new UserError(
        `batch migration ${spec.name}: target.columns must set the key of ${spec.target.table} (${missingKey.join(', ')})`,
      );
    const exprs = cols.map((c) => `(${spec.target!.columns[c]})`).join(', ');
    const updates = cols
      .filter((c) => !targetKey.includes(c))
      .map((c) => `${qi(c)} = EXCLUDED.${qi(c)}`)
      .join(', ');
    const sql = `INSERT INTO ${qt(target)} (${cols.map(qi).join(', ')})
      SELECT ${exprs} FROM ${qt(source)} s JOIN ${keysFrom} ON ${typed} WHERE ${where}
      ON CONFLICT (${targetKey.map(qi).join(', ')}) DO ${updates ? `UPDATE SET ${updates}` : 'NOTHING'}`;
    try {
      await client.query(
        `EXPLAIN ${sql}`,
        key.map(() => []),
      );
    } catch (err) {
      throw new UserError(`batch migration ${spec.name}: ${(err as Error).message}`);
    }
    return {
      source,
      key,
      where,
      apply: async (c, keys) => {
        await c.query(sql, columns(keys));
      },
    };
  }
  const migrator = await loadMigrator(spec.module!);
  const select = `SELECT s.* FROM ${qt(source)} s JOIN ${keysFrom} ON ${typed} WHERE ${where} ORDER BY ${key.map((k) => `s.${qi(k)}`).join(', ')}`;
  return {
    source,
    key,
    where,
    apply: async (c, keys) => {
      const rows = await c.query<Record<string, unknown>>(select, columns(keys));
      await migrator(c, rows.rows);
    },
  };
}

interface Range {
  start: unknown[] | null;
  end: unknown[] | null;
}

/**
 * Key ranges for `parts` parallel walkers, from tiles of the ordered keys. The first run stores
 * them with the checkpoints; a resumed run uses the stored ones, so each range's checkpoint
 * still lies inside its range whatever the table did in between.
 */
async function ranges(
  client: pg.ClientBase,
  spec: BatchMigrationSpec,
  plan: Plan,
  parts: number,
): Promise<Range[]> {
  if (!spec.dryRun) {
    const stored = await client.query<{ start_key: unknown[] | null; end_key: unknown[] | null }>(
      `SELECT start_key, end_key FROM ${CHECKPOINTS} WHERE migration = $1 ORDER BY range_no`,
      [spec.name],
    );
    if (stored.rows.length) return stored.rows.map((r) => ({ start: r.start_key, end: r.end_key }));
  }
  let starts: Array<unknown[] | null> = [null];
  if (parts > 1) {
    const keyList = plan.key.map(qi).join(', ');
    const r = await client.query<{ k: unknown[] }>(
      `SELECT DISTINCT ON (t) k FROM (
         SELECT jsonb_build_array(${keyList}) AS k, ntile($1) OVER (ORDER BY ${keyList}) AS t,
                row_number() OVER (ORDER BY ${keyList}) AS rn
           FROM ${qt(plan.source)} WHERE ${plan.where}) x
        ORDER BY t, rn`,
      [parts],
    );
    starts = [null, ...r.rows.slice(1).map((row) => row.k)];
  }
  const out = starts.map((start, i) => ({ start, end: starts[i + 1] ?? null }));
  if (!spec.dryRun)
    for (const [i, r] of out.entries())
      await client.query(
        `INSERT INTO ${CHECKPOINTS} (migration, range_no, start_key, end_key) VALUES ($1, $2, $3, $4)
         ON CONFLICT (migration, range_no) DO NOTHING`,
        [spec.name, i, JSON.stringify(r.start), JSON.stringify(r.end)],
      );
  return out;
}

export async function runBatchMigration(
  url: string,
  spec: BatchMigrationSpec,
  hooks: BatchHooks = {},
): Promise<BatchProgress> {
  const admin = new pg.Client({ connectionString: url, application_name: 'cutover-batch' });
  await admin.connect();
  let plan: Plan;
  let parts: Range[];
  try {
    if (!spec.dryRun) await ensureBatchSchema(admin);
    plan = await planBatchMigration(admin, spec);
    parts = await ranges(admin, spec, plan, Math.max(1, spec.concurrency ?? 1));
  } finally {
    await admin.end();
  }
  const progress: BatchProgress = { itemsDone: 0, batches: 0, deadLetters: 0, failures: [] };
  await Promise.all(
    parts.map((r, i) => walkRange(url, spec, plan, i, r.start, r.end, progress, hooks)),
  );
  return progress;
}

async function walkRange(
  url: string,
  spec: BatchMigrationSpec,
  plan: Plan,
  range: number,
  start: unknown[] | null,
  end: unknown[] | null,
  progress: BatchProgress,
  hooks: BatchHooks,
): Promise<void> {
  const c = new pg.Client({ connectionString: url, application_name: 'cutover-batch' });
  await c.connect();
  const keyList = plan.key.map(qi).join(', ');
  const n = spec.batchSize ?? 1000;
  const attempts = spec.itemAttempts ?? 3;
  const keyParams = (from: number) => plan.key.map((_, i) => `$${from + i}`).join(', ');
  try {
    // The committed checkpoint decides where to go on: it is written with each batch.
    let last: unknown[] | null = null;
    let done = false;
    if (!spec.dryRun) {
      const cp = await c.query<{ last_key: unknown[] | null; done: boolean }>(
        `SELECT last_key, done FROM ${CHECKPOINTS} WHERE migration = $1 AND range_no = $2`,
        [spec.name, range],
      );
      last = cp.rows[0]?.last_key ?? null;
      done = cp.rows[0]?.done ?? false;
    }
    if (done) return;
    for (;;) {
      await hooks.beforeBatch?.();
      const conds = [plan.where];
      const params: unknown[] = [];
      const from = last ?? start;
      if (from) {
        conds.push(`(${keyList}) ${last ? '>' : '>='} (${keyParams(params.length + 1)})`);
        params.push(...from);
      }
      if (end) {
        conds.push(`(${keyList}) < (${keyParams(params.length + 1)})`);
        params.push(...end);
      }
      const batch = await c.query<{ k: unknown[] }>(
        `SELECT jsonb_build_array(${keyList}) AS k FROM ${qt(plan.source)}
          WHERE ${conds.join(' AND ')} ORDER BY ${keyList} LIMIT ${n}`,
        params,
      );
      const keys = batch.rows.map((r) => r.k);
      const lastKey = keys.length ? keys[keys.length - 1]! : last;
      await c.query('BEGIN');
      try {
        const dead = await applyBatch(c, plan, keys, attempts);
        if (spec.dryRun) {
          for (const d of dead)
            if (progress.failures.length < 20)
              progress.failures.push({ key: JSON.stringify(d.key), error: d.error });
          await c.query('ROLLBACK');
        } else {
          for (const d of dead)
            await c.query(
              `INSERT INTO ${DEAD_LETTERS} (migration, key, error, attempts) VALUES ($1, $2, $3, $4)
               ON CONFLICT (migration, key) DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, at = now()`,
              [spec.name, JSON.stringify(d.key), d.error, attempts],
            );
          await c.query(
            `UPDATE ${CHECKPOINTS}
                SET last_key = $3, items = items + $4, done = $5, updated_at = now()
              WHERE migration = $1 AND range_no = $2`,
            [spec.name, range, JSON.stringify(lastKey), keys.length - dead.length, keys.length < n],
          );
          await c.query('COMMIT');
        }
        progress.deadLetters += dead.length;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      progress.itemsDone += keys.length;
      progress.batches += 1;
      hooks.onProgress?.({ ...progress, failures: [...progress.failures] });
      if (keys.length < n) return;
      last = lastKey;
    }
  } finally {
    await c.end();
  }
}

/** Applies a batch; on failure, item by item under savepoints. Returns the items that failed. */
async function applyBatch(
  c: pg.ClientBase,
  plan: Plan,
  keys: unknown[][],
  attempts: number,
): Promise<Array<{ key: unknown[]; error: string }>> {
  if (!keys.length) return [];
  await c.query('SAVEPOINT batch');
  try {
    await plan.apply(c, keys);
    await c.query('RELEASE SAVEPOINT batch');
    return [];
  } catch (err) {
    if (!isItemError(err)) throw err;
    await c.query('ROLLBACK TO SAVEPOINT batch');
  }
  const dead: Array<{ key: unknown[]; error: string }> = [];
  for (const key of keys) {
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      await c.query('SAVEPOINT item');
      try {
        await plan.apply(c, [key]);
        await c.query('RELEASE SAVEPOINT item');
        lastError = '';
        break;
      } catch (err) {
        if (!isItemError(err)) throw err;
        await c.query('ROLLBACK TO SAVEPOINT item');
        lastError = (err as Error).message;
      }
    }
    if (lastError) dead.push({ key, error: lastError });
  }
  return dead;
}

/**
 * An error one item causes (bad data: SQLSTATE classes 22 and 23, or anything a migrator module
 * throws that is not a PostgreSQL error) is the item's; connection loss and the like are not,
 * and fail the batch so the activity retries it whole.
 */
function isItemError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return code.startsWith('22') || code.startsWith('23') || code === 'P0001';
}

export interface BatchVerification {
  sourceRows: number;
  targetRows: number;
  deadLetters: number;
  /** Source rows whose mapped values differ from the destination row (EXCEPT ALL, key order). */
  differing: number;
}

/** Counts and a row-by-row comparison of mapped source rows and destination rows (SQL mapping only). */
export async function verifyBatchMigration(
  client: pg.ClientBase,
  spec: BatchMigrationSpec,
): Promise<BatchVerification> {
  if (!spec.target)
    throw new UserError(
      `batch migration ${spec.name}: verification needs a target mapping (not a module)`,
    );
  const source = tableRef(spec.source.table);
  const target = tableRef(spec.target.table);
  const cols = Object.keys(spec.target.columns);
  const where = spec.source.where ? `(${spec.source.where})` : 'true';
  const mapped = `SELECT ${cols.map((c) => `(${spec.target!.columns[c]})::text AS ${qi(c)}`).join(', ')} FROM ${qt(source)} s WHERE ${where}`;
  const key = await keyColumns(client, source);
  const notDead = `NOT EXISTS (SELECT 1 FROM ${DEAD_LETTERS} d WHERE d.migration = $1 AND d.key = jsonb_build_array(${key.map((k) => `s.${qi(k)}`).join(', ')}))`;
  const mappedLive = `${mapped} AND ${notDead}`;
  const dest = `SELECT ${cols.map((c) => `${qi(c)}::text`).join(', ')} FROM ${qt(target)}`;
  const r = await client.query<{ s: string; t: string; d: string; x: string }>(
    `SELECT (SELECT count(*) FROM ${qt(source)} s WHERE ${where})::text AS s,
            (SELECT count(*) FROM ${qt(target)})::text AS t,
            (SELECT count(*) FROM ${DEAD_LETTERS} WHERE migration = $1)::text AS d,
            (SELECT count(*) FROM (${mappedLive} EXCEPT ALL ${dest}) x)::text AS x`,
    [spec.name],
  );
  const row = r.rows[0]!;
  return {
    sourceRows: Number(row.s),
    targetRows: Number(row.t),
    deadLetters: Number(row.d),
    differing: Number(row.x),
  };
}
