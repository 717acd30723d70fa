/**
 * The rule table: the single source of truth for every lint rule's id, severity, danger and safe
 * form. docs/lint-rules.md is generated from the same facts and a test keeps the two in step, so
 * adding a rule means adding a row here (and its check in checks.ts, and its examples in tests).
 */

export type Severity = 'error' | 'warning';

export interface RuleMeta {
  id: RuleId;
  severity: Severity;
  /** One line: what the rule catches. */
  title: string;
  /** Why it is dangerous on a live, busy table. */
  why: string;
  /** What to write instead. */
  safeAlternative: string;
}

export const RULE_IDS = [
  'syntax-error',
  'invalid-ignore',
  'transaction-control',
  'create-index-not-concurrently',
  'drop-index-not-concurrently',
  'concurrently-in-transaction',
  'constraint-not-valid',
  'set-not-null',
  'add-column-not-null-without-default',
  'add-column-volatile-default',
  'alter-column-type',
  'rename-column',
  'rename-table',
  'drop-column',
  'drop-table',
  'unique-without-index',
  'missing-lock-timeout',
  'truncate-cascade',
  'truncate',
  'reindex-not-concurrently',
  'vacuum-full-or-cluster',
  'whole-table-write',
  'enum-value-in-transaction',
  'enum-value-used-in-transaction',
  'prefer-bigint',
  'prefer-identity',
  'prefer-timestamptz',
  'prefer-text',
] as const;

export type RuleId = (typeof RULE_IDS)[number];

// Keyed by id so the compiler rejects a rule without its row (or a row without its id).
const table: Record<RuleId, Omit<RuleMeta, 'id'>> = {
  'syntax-error': {
    severity: 'error',
    title: 'The file does not parse as PostgreSQL SQL.',
    why: 'A migration that does not parse fails at deploy time, after earlier files already ran.',
    safeAlternative:
      'Fix the SQL at the reported position; the lint uses the real PostgreSQL parser.',
  },
  'invalid-ignore': {
    severity: 'error',
    title: 'A lint ignore comment without a reason, or naming an unknown rule.',
    why: 'An unexplained ignore hides a dangerous statement from reviewers and from the next person.',
    safeAlternative:
      'Write `-- cutover-lint:ignore <rule>[, <rule>] -- <why this is safe here>` (or `ignore-file`).',
  },
  'transaction-control': {
    severity: 'error',
    title: 'BEGIN / COMMIT / ROLLBACK / SAVEPOINT inside a migration file.',
    why: 'The runner owns the transaction (or runs statements one by one under `cutover:no-transaction`); explicit transaction control breaks its rollback and its history record.',
    safeAlternative:
      'Remove the transaction statements; use `-- cutover:no-transaction` for statements that must run outside a transaction.',
  },
  'create-index-not-concurrently': {
    severity: 'error',
    title: 'CREATE INDEX without CONCURRENTLY on an existing table.',
    why: 'A plain CREATE INDEX holds a SHARE lock for the whole build: every INSERT, UPDATE and DELETE on the table waits until it finishes.',
    safeAlternative:
      'CREATE INDEX CONCURRENTLY in a migration marked `-- cutover:no-transaction` (one index per statement).',
  },
  'drop-index-not-concurrently': {
    severity: 'error',
    title: 'DROP INDEX without CONCURRENTLY on an existing table.',
    why: "A plain DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table: reads and writes queue behind it, and behind any long query it waits for.",
    safeAlternative: 'DROP INDEX CONCURRENTLY in a migration marked `-- cutover:no-transaction`.',
  },
  'concurrently-in-transaction': {
    severity: 'error',
    title: 'CONCURRENTLY in a migration that runs inside a transaction.',
    why: 'PostgreSQL refuses CREATE/DROP INDEX CONCURRENTLY (and REINDEX CONCURRENTLY) inside a transaction block: the migration fails at deploy time.',
    safeAlternative:
      'Put the statement in its own migration whose first line is `-- cutover:no-transaction`.',
  },
  'constraint-not-valid': {
    severity: 'error',
    title: 'Adding a FOREIGN KEY or CHECK constraint without NOT VALID on an existing table.',
    why: 'Validating the constraint scans the whole table (and, for a foreign key, locks the referenced table) while holding a lock that blocks writes.',
    safeAlternative:
      'ADD CONSTRAINT ... NOT VALID (instant), then ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction (takes only SHARE UPDATE EXCLUSIVE).',
  },
  'set-not-null': {
    severity: 'error',
    title: 'SET NOT NULL on an existing column without a validated CHECK (col IS NOT NULL) first.',
    why: 'SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, blocking reads and writes, unless a valid CHECK constraint already proves the column has no NULLs.',
    safeAlternative:
      'ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c (later transaction); SET NOT NULL (no scan on PostgreSQL 12+); DROP CONSTRAINT c.',
  },
  'add-column-not-null-without-default': {
    severity: 'error',
    title: 'Adding a NOT NULL column without a DEFAULT to an existing table.',
    why: 'It fails as soon as the table has a row, and old application code that does not know the column cannot insert.',
    safeAlternative:
      'Add the column nullable (or with a constant DEFAULT), backfill in batches, then add NOT NULL the safe way (see set-not-null).',
  },
  'add-column-volatile-default': {
    severity: 'error',
    title:
      'Adding a column whose default is volatile (or identity / stored generated / serial) to an existing table.',
    why: 'A volatile default (random(), clock_timestamp(), gen_random_uuid(), nextval) must be computed per row: PostgreSQL rewrites the whole table under an ACCESS EXCLUSIVE lock. Before PostgreSQL 11 any default does.',
    safeAlternative:
      'Add the column without a default, SET DEFAULT in a second statement (affects new rows only), then backfill existing rows in keyset batches.',
  },
  'alter-column-type': {
    severity: 'error',
    title: 'Changing a column type on an existing table (unless binary-coercible).',
    why: 'ALTER COLUMN ... TYPE rewrites the table and rebuilds its indexes under an ACCESS EXCLUSIVE lock, and old application code may break on the new type. Only binary-coercible changes (varchar widening, varchar to text, numeric precision increase) skip the rewrite.',
    safeAlternative:
      'Expand/contract: add a new column, keep it in sync with a trigger, backfill in batches, switch the application, drop the old column later; or run it as a cutover blue-green table change (shadow table, sync, backfill, verify, shift).',
  },
  'rename-column': {
    severity: 'error',
    title: 'Renaming a column.',
    why: 'Application instances still running the old code query the old name and fail the moment the rename commits.',
    safeAlternative:
      'Expand/contract: add the new column, sync both ways with a trigger, backfill, move the application to it, drop the old column in a later deploy.',
  },
  'rename-table': {
    severity: 'error',
    title: 'Renaming a table.',
    why: 'Application instances still running the old code query the old name and fail the moment the rename commits.',
    safeAlternative:
      'Rename and, in the same transaction, CREATE VIEW old_name AS SELECT * FROM new_name (simple views are updatable); move the application; drop the view in a later deploy.',
  },
  'drop-column': {
    severity: 'error',
    title: 'Dropping a column without a deprecation marker in an earlier migration.',
    why: 'Application instances still reading or writing the column fail at once, and the data is gone: the down script cannot bring it back.',
    safeAlternative:
      "Stop using the column first and mark it in an earlier migration with COMMENT ON COLUMN t.c IS 'deprecated: <why>'; drop it in a later deploy.",
  },
  'drop-table': {
    severity: 'error',
    title: 'Dropping a table without a deprecation marker in an earlier migration.',
    why: 'Application instances still using the table fail at once, and the data is gone: the down script cannot bring it back.',
    safeAlternative:
      "Stop using the table first and mark it in an earlier migration with COMMENT ON TABLE t IS 'deprecated: <why>' (or archive it); drop it in a later deploy.",
  },
  'unique-without-index': {
    severity: 'error',
    title:
      'Adding a UNIQUE or PRIMARY KEY constraint that builds its own index on an existing table.',
    why: 'The constraint builds its index while holding an ACCESS EXCLUSIVE lock: the table is unreadable and unwritable for the whole build.',
    safeAlternative:
      'CREATE UNIQUE INDEX CONCURRENTLY (no-transaction migration), then ALTER TABLE ... ADD CONSTRAINT ... UNIQUE / PRIMARY KEY USING INDEX (instant).',
  },
  'missing-lock-timeout': {
    severity: 'error',
    title: 'DDL on an existing table with no lock_timeout (when the runner does not set one).',
    why: 'A DDL lock request that waits behind a long query blocks every query queued after it: the whole table stalls for as long as the wait lasts.',
    safeAlternative:
      "Keep the runner's default lock_timeout, or start the migration with SET lock_timeout = '1s' and retry on timeout.",
  },
  'truncate-cascade': {
    severity: 'error',
    title: 'TRUNCATE ... CASCADE.',
    why: 'CASCADE silently empties every table that references the truncated one through foreign keys, however far the chain goes.',
    safeAlternative:
      'Truncate the named tables explicitly (TRUNCATE a, b) after checking what references them, or delete in batches.',
  },
  truncate: {
    severity: 'error',
    title: 'TRUNCATE of an existing table.',
    why: 'TRUNCATE takes an ACCESS EXCLUSIVE lock (every read and write of the table waits) and empties it at once: the data is gone for every application still using it, with no WHERE to limit the damage.',
    safeAlternative:
      'Delete the rows you mean in keyset batches (DELETE … WHERE id IN (SELECT id … LIMIT 10000)), or drop the table in a later contract step once nothing reads it.',
  },
  'reindex-not-concurrently': {
    severity: 'error',
    title: 'REINDEX without CONCURRENTLY.',
    why: 'A plain REINDEX blocks writes to the table for the whole rebuild, and queries that would use the index wait on its ACCESS EXCLUSIVE lock.',
    safeAlternative:
      'REINDEX INDEX CONCURRENTLY (PostgreSQL 12+) in a migration marked `-- cutover:no-transaction`.',
  },
  'vacuum-full-or-cluster': {
    severity: 'error',
    title: 'VACUUM FULL or CLUSTER.',
    why: 'Both rewrite the whole table under an ACCESS EXCLUSIVE lock: no read or write gets through until the rewrite ends, and it needs room for a second copy of the table.',
    safeAlternative:
      'Plain VACUUM (outside a migration), pg_repack / pg_squeeze for an online rewrite, or a cutover blue-green plan that copies into a new table.',
  },
  'whole-table-write': {
    severity: 'warning',
    title: 'UPDATE or DELETE without WHERE on an existing table.',
    why: 'One statement locks and rewrites (or deletes) every row in a single transaction: concurrent writers wait on row locks until it commits, and dead rows and WAL pile up at once.',
    safeAlternative:
      'Work in keyset batches committed one by one (… WHERE id > $last AND id <= $last + 10000), or add the WHERE clause you meant.',
  },
  'enum-value-in-transaction': {
    severity: 'error',
    title: 'ALTER TYPE ... ADD VALUE inside a transaction on PostgreSQL before 12.',
    why: 'Before PostgreSQL 12 adding an enum value cannot run inside a transaction block: the migration fails at deploy time.',
    safeAlternative:
      'Put ALTER TYPE ... ADD VALUE in a migration marked `-- cutover:no-transaction` (and do not use the new value in the same transaction).',
  },
  'enum-value-used-in-transaction': {
    severity: 'error',
    title: 'A new enum value used in the transaction that adds it.',
    why: 'PostgreSQL 12+ allows ALTER TYPE … ADD VALUE in a transaction, but the new value cannot be used until that transaction commits ("unsafe use of new value"): the migration fails at deploy time.',
    safeAlternative:
      'Add the value in its own migration (or one marked `-- cutover:no-transaction`), and use it in a later migration.',
  },
  'prefer-bigint': {
    severity: 'warning',
    title: 'integer / smallint (or serial) used for a key column.',
    why: 'A 32-bit key runs out at 2.1 billion; widening it later is a full table rewrite of the table and of every table that references it.',
    safeAlternative: 'Use bigint (bigint GENERATED ... AS IDENTITY for surrogate keys).',
  },
  'prefer-identity': {
    severity: 'warning',
    title: 'serial / bigserial instead of an identity column.',
    why: 'serial creates a separately owned sequence with loose permissions and odd dump/copy behaviour; identity columns are the SQL-standard replacement.',
    safeAlternative: 'bigint GENERATED ALWAYS AS IDENTITY (or GENERATED BY DEFAULT AS IDENTITY).',
  },
  'prefer-timestamptz': {
    severity: 'warning',
    title: 'timestamp without time zone.',
    why: "timestamp stores wall-clock time with no zone: values change meaning with the session's TimeZone and break around DST changes.",
    safeAlternative: 'timestamptz (timestamp with time zone).',
  },
  'prefer-text': {
    severity: 'warning',
    title: 'varchar(n) / char(n) instead of text.',
    why: 'The length limit is enforced by a type whose change needs a table rewrite unless widened; char(n) pads with spaces. text is stored the same way.',
    safeAlternative:
      'text, with a CHECK (length(col) <= n) NOT VALID constraint if a limit is really needed.',
  },
};

export const RULES: readonly RuleMeta[] = RULE_IDS.map((id) => ({ id, ...table[id] }));

const byId = new Map(RULES.map((r) => [r.id, r]));

export function ruleMeta(id: RuleId): RuleMeta {
  const meta = byId.get(id);
  if (!meta) throw new Error(`unknown lint rule ${id}`);
  return meta;
}

export function isRuleId(s: string): s is RuleId {
  return byId.has(s as RuleId);
}
