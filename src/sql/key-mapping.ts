/**
 * Key columns must map to themselves. The copy, the sync triggers and verification all match a
 * row of one table with the row of the other by the key's VALUE; a computed key (`id: id + 1`)
 * makes every trigger update and delete miss its row and verification report every chunk as
 * different — found only after the backfill. A cast (`id: id::bigint`, widening a key) keeps the
 * value and is allowed.
 */
import { loadModule, parseSync } from 'libpg-query';
import { quoteInput } from '../safe-text';

await loadModule();

type Node = Record<string, unknown>;

/** The column a bare (possibly cast, possibly parenthesized) column reference names, or null. */
function plainColumn(expr: string): string | null {
  let node: Node | undefined;
  try {
    const stmt = (parseSync(`SELECT (${expr})`) as unknown as { stmts: Array<{ stmt: Node }> })
      .stmts[0]?.stmt.SelectStmt as Node | undefined;
    const targets = stmt?.targetList as Array<{ ResTarget: { val: Node } }> | undefined;
    node = targets?.[0]?.ResTarget.val;
  } catch {
    return null; // the expression check reports syntax errors
  }
  while (node?.TypeCast) node = (node.TypeCast as { arg: Node }).arg;
  const fields = (node?.ColumnRef as { fields?: Array<{ String?: { sval: string } }> } | undefined)
    ?.fields;
  return fields?.length ? (fields[fields.length - 1]!.String?.sval ?? null) : null;
}

/** One problem per key column whose up or down mapping is anything but the column itself. */
export function computedKeyProblems(
  key: string[],
  mapping: { up: Record<string, string>; down?: Record<string, string> },
): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  for (const direction of ['up', 'down'] as const) {
    const map = mapping[direction] ?? {};
    for (const k of key) {
      const expr = map[k];
      if (expr === undefined || plainColumn(expr) === k) continue;
      out.push({
        path: `mapping.${direction}.${k}`,
        message: `key column "${k}" is computed (${quoteInput(expr, 60)}): rows are matched by key value in both tables, so a key must map to itself (a cast such as ${k}::bigint is fine); remove the mapping or change the key`,
      });
    }
  }
  return out;
}
