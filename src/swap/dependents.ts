/**
 * What points at the old table, and what the old table has that the new one must keep: read from
 * the catalog before the swap (for `plan check` and for the swap's own validation) and inside the
 * swap transaction (after the locks, so nothing changes underneath). Definitions are printed with
 * pg_get_*def while the old table still has its name: executed after the renames, the same text
 * names the new table, which is exactly how the swap re-points them. Read-only.
 */
import type { ClientBase } from 'pg';
import { quoteQualified } from '../db/ident';
import type { TableRef } from '../plan/types';

export type DependentKind =
  | 'foreign key in'
  | 'foreign key out'
  | 'check'
  | 'index'
  | 'sequence'
  | 'view'
  | 'materialized view'
  | 'trigger'
  | 'function'
  | 'grant'
  | 'owner'
  | 'policy'
  | 'comment'
  | 'partitioning'
  | 'inheritance';

export interface Dependent {
  kind: DependentKind;
  /** Qualified object name as a person reads it. */
  name: string;
  /** What the swap does with it (or, when refused, why and what to do). */
  action: string;
  /** Set when the swap cannot carry it: the plan is refused before anything changes. */
  refused?: boolean;
}

export interface ForeignKeyIn {
  schema: string;
  table: string;
  name: string;
  /** pg_get_constraintdef printed while the old table had its name. */
  definition: string;
}

export interface ViewInfo {
  schema: string;
  name: string;
  definition: string;
  options: string[] | null;
  owner: string;
  comment: string | null;
  /** GRANT statements that give the view (by name) its current privileges. */
  grants: string[];
}

export interface TriggerInfo {
  name: string;
  definition: string;
  enabled: string;
}

export interface SequenceUse {
  /** Qualified, quoted sequence name (regclass text). */
  sequence: string;
  column: string;
  /** 'owned' (serial, OWNED BY the column), 'identity' or 'shared' (a default, owned elsewhere). */
  how: 'owned' | 'identity' | 'shared';
  identityKind?: 'a' | 'd';
}

const q = (t: TableRef) => [t.schema, t.table];

export async function relOid(client: ClientBase, t: TableRef): Promise<number | null> {
  const { rows } = await client.query<{ oid: number }>(
    `SELECT c.oid::int AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    q(t),
  );
  return rows[0]?.oid ?? null;
}

export async function foreignKeysIn(client: ClientBase, oid: number): Promise<ForeignKeyIn[]> {
  const { rows } = await client.query<ForeignKeyIn>(
    `SELECT n.nspname AS schema, c.relname AS table, k.conname AS name,
            pg_get_constraintdef(k.oid) AS definition
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conrelid <> $1
      ORDER BY 1, 2, 3`,
    [oid],
  );
  return rows;
}

export interface OwnConstraint {
  name: string;
  type: string;
  definition: string;
  selfReference: boolean;
}

export async function ownConstraints(client: ClientBase, oid: number): Promise<OwnConstraint[]> {
  const { rows } = await client.query<OwnConstraint>(
    `SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS definition,
            (contype = 'f' AND confrelid = conrelid) AS "selfReference"
       FROM pg_constraint WHERE conrelid = $1 AND contype IN ('f', 'c') ORDER BY conname`,
    [oid],
  );
  return rows;
}

export async function dependentViews(client: ClientBase, oid: number): Promise<ViewInfo[]> {
  const { rows } = await client.query<Omit<ViewInfo, 'grants'> & { oid: number }>(
    `SELECT DISTINCT n.nspname AS schema, v.relname AS name, pg_get_viewdef(v.oid) AS definition,
            v.reloptions AS options, pg_get_userbyid(v.relowner) AS owner,
            obj_description(v.oid, 'pg_class') AS comment, v.oid::int AS oid
       FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
       JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
      WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.oid <> $1
        AND v.relkind = 'v'
      ORDER BY 7`,
    [oid],
  );
  const out: ViewInfo[] = [];
  for (const { oid: viewOid, ...v } of rows)
    out.push({
      ...v,
      grants: await grantStatements(client, viewOid, quoteQualified(v.schema, v.name)),
    });
  return out;
}

async function materializedViews(client: ClientBase, oid: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT DISTINCT format('%I.%I', n.nspname, v.relname) AS name
       FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
       JOIN pg_class v ON v.oid = r.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
      WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.relkind = 'm'`,
    [oid],
  );
  return rows.map((r) => r.name);
}

/** The application's own triggers (not cutover's sync triggers, not internal FK triggers). */
export async function appTriggers(client: ClientBase, oid: number): Promise<TriggerInfo[]> {
  const { rows } = await client.query<TriggerInfo>(
    `SELECT tgname AS name, pg_get_triggerdef(oid) AS definition, tgenabled::text AS enabled
       FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal AND tgname NOT LIKE 'cutover\\_sync\\_%'
      ORDER BY tgname`,
    [oid],
  );
  return rows;
}

export async function sequenceUses(client: ClientBase, oid: number): Promise<SequenceUse[]> {
  const { rows } = await client.query<SequenceUse & { deptype: string; identity: string }>(
    `SELECT DISTINCT s.oid::regclass::text AS sequence, a.attname AS column,
            d.deptype::text AS deptype, a.attidentity::text AS identity
       FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a', 'i')
     UNION
     SELECT DISTINCT s.oid::regclass::text, a.attname, 'n', a.attidentity::text
       FROM pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
       JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
       JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
      WHERE ad.adrelid = $1
        AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.objid = s.oid
                          AND o.classid = 'pg_class'::regclass AND o.refobjid = $1
                          AND o.deptype IN ('a', 'i'))`,
    [oid],
  );
  return rows.map((r) => ({
    sequence: r.sequence,
    column: r.column,
    how: r.deptype === 'i' ? 'identity' : r.deptype === 'a' ? 'owned' : 'shared',
    ...(r.deptype === 'i' ? { identityKind: r.identity as 'a' | 'd' } : {}),
  }));
}

/** Functions whose arguments or result use the table's row type. */
async function rowTypeFunctions(client: ClientBase, oid: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS name
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
            (SELECT reltype FROM pg_class WHERE oid = $1) t
      WHERE p.prorettype = t.reltype OR t.reltype = ANY (p.proargtypes)
         OR t.reltype = ANY (coalesce(p.proallargtypes, '{}'))
      ORDER BY 1`,
    [oid],
  );
  return rows.map((r) => r.name);
}

export interface PolicyInfo {
  name: string;
  definition: string;
}

/** CREATE POLICY statements for `onTable` (quoted, qualified) that copy the table's policies. */
export async function policies(
  client: ClientBase,
  oid: number,
  onTable: string,
): Promise<PolicyInfo[]> {
  const { rows } = await client.query<PolicyInfo>(
    `SELECT p.polname AS name,
            format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, $2::text,
              CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
              CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                            WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
              CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                   ELSE (SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles
                          WHERE oid = ANY (p.polroles)) END,
              CASE WHEN p.polqual IS NULL THEN ''
                   ELSE ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')' END,
              CASE WHEN p.polwithcheck IS NULL THEN ''
                   ELSE ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')' END)
              AS definition
       FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.polname`,
    [oid, onTable],
  );
  return rows;
}

/** GRANT statements that give `onTable` the table-level privileges the table has. */
export async function grantStatements(
  client: ClientBase,
  oid: number,
  onTable: string,
): Promise<string[]> {
  const { rows } = await client.query<{ sql: string }>(
    `SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, $2::text,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,
              CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS sql
       FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
      WHERE c.oid = $1 AND a.grantee <> c.relowner`,
    [oid, onTable],
  );
  return rows.map((r) => r.sql);
}

interface TableFacts {
  relkind: string;
  ispartition: boolean;
  inherits: boolean;
  inherited: boolean;
  owner: string;
  comment: string | null;
  rls: boolean;
  forceRls: boolean;
  hasAcl: boolean;
}

export async function tableFacts(client: ClientBase, oid: number): Promise<TableFacts> {
  const { rows } = await client.query<TableFacts>(
    `SELECT c.relkind::text AS relkind, c.relispartition AS ispartition,
            EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid) AS inherits,
            EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = c.oid) AS inherited,
            pg_get_userbyid(c.relowner) AS owner, obj_description(c.oid, 'pg_class') AS comment,
            c.relrowsecurity AS rls, c.relforcerowsecurity AS "forceRls",
            c.relacl IS NOT NULL AS "hasAcl"
       FROM pg_class c WHERE c.oid = $1`,
    [oid],
  );
  return rows[0]!;
}

/**
 * Every dependent of the old table and what the swap will do with it. `refused` entries make the
 * plan fail its check: the message says what to do instead.
 */
export async function inspectDependents(
  client: ClientBase,
  source: TableRef,
): Promise<Dependent[]> {
  const oid = await relOid(client, source);
  if (oid === null) return [];
  const label = `${source.schema}.${source.table}`;
  const out: Dependent[] = [];
  const facts = await tableFacts(client, oid);
  if (facts.relkind === 'p' || facts.ispartition)
    out.push({
      kind: 'partitioning',
      name: label,
      action: `${label} ${facts.relkind === 'p' ? 'is partitioned' : 'is a partition'}: cutover cannot swap it yet (the new table would not be partitioned the same way); change each partition with its own plan, or use the versioned-migration workflow`,
      refused: true,
    });
  else if (facts.inherits || facts.inherited)
    out.push({
      kind: 'inheritance',
      name: label,
      action: `${label} takes part in table inheritance, which a rename cannot carry: detach the children (ALTER TABLE … NO INHERIT) first`,
      refused: true,
    });
  for (const c of await ownConstraints(client, oid)) {
    if (c.type === 'c')
      out.push({
        kind: 'check',
        name: c.name,
        action: 'kept on the new table (copied with its DDL, validated after the backfill)',
      });
    else if (c.selfReference)
      out.push({
        kind: 'foreign key out',
        name: c.name,
        action: `references ${label} itself: a self-referencing foreign key cannot follow the swap yet; drop it before the run and add it back (NOT VALID, then VALIDATE) afterwards`,
        refused: true,
      });
    else
      out.push({
        kind: 'foreign key out',
        name: c.name,
        action: `added to the new table NOT VALID before the swap, validated after it (${c.definition})`,
      });
  }
  for (const fk of await foreignKeysIn(client, oid))
    out.push({
      kind: 'foreign key in',
      name: `${fk.schema}.${fk.table}.${fk.name}`,
      action:
        're-pointed at the new table NOT VALID inside the swap transaction, validated after it; swapped back the same way',
    });
  const { rows: idx } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1 ORDER BY 1`,
    [oid],
  );
  for (const i of idx)
    out.push({
      kind: 'index',
      name: i.name,
      action:
        'its name passes to the new table’s index of the same definition; the archive’s index gets a suffixed name',
    });
  for (const s of await sequenceUses(client, oid))
    out.push({
      kind: 'sequence',
      name: s.sequence,
      action:
        s.how === 'owned'
          ? `column ${s.column} (serial): the new table draws from it from its first insert; ownership moves to the new table with the swap (and back with a swap-back)`
          : s.how === 'identity'
            ? `identity column ${s.column}: the new table draws from it from its first insert; cleanup makes the new column an identity continuing after its last value, so dropping the archive works`
            : `column ${s.column} draws from a shared sequence: the new table uses the same default; the sequence is not owned by the table and is left alone`,
    });
  for (const v of await dependentViews(client, oid))
    out.push({
      kind: 'view',
      name: `${v.schema}.${v.name}`,
      action:
        'recreated over the new table in the swap transaction (CREATE OR REPLACE VIEW with the same definition; when a column type changes, dropped and created again with its owner, grants and comment, which fails the swap, changing nothing, if other views depend on it); swapped back the same way',
    });
  for (const m of await materializedViews(client, oid))
    out.push({
      kind: 'materialized view',
      name: m,
      action:
        'a materialized view stays bound to the old table and cannot be replaced in place: drop it before the run and create it again after the swap',
      refused: true,
    });
  for (const t of await appTriggers(client, oid))
    out.push({
      kind: 'trigger',
      name: t.name,
      action:
        'created on the new table in the swap transaction and disabled on the archive (so the reverse sync does not fire it twice); swapped back the other way',
    });
  for (const f of await rowTypeFunctions(client, oid))
    out.push({
      kind: 'function',
      name: f,
      action: `uses the row type of ${label}, which stays with the archive after a rename: drop the function before the run and create it again after the swap (or make it use a view's row type)`,
      refused: true,
    });
  out.push({
    kind: 'owner',
    name: facts.owner,
    action: 'the new table gets the same owner in the swap transaction',
  });
  if (facts.hasAcl)
    out.push({
      kind: 'grant',
      name: label,
      action: 'table privileges copied to the new table in the swap transaction',
    });
  for (const p of await policies(client, oid, label))
    out.push({
      kind: 'policy',
      name: p.name,
      action: `row-level security policy created on the new table in the swap transaction${facts.rls ? ' (RLS enabled there too)' : ''}`,
    });
  if (facts.comment !== null)
    out.push({
      kind: 'comment',
      name: label,
      action: 'table and column comments copied to the new table in the swap transaction',
    });
  return out;
}

export function refusals(dependents: Dependent[]): Dependent[] {
  return dependents.filter((d) => d.refused);
}
