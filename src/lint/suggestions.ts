/**
 * Concrete, statement-specific steps that do the same change without downtime: the
 * expand/contract sequence, or the cutover blue-green table change that automates it.
 */

export function typeChangeSuggestion(table: string, column: string, newType: string): string {
  const tmp = `${column}_new`;
  return [
    `Expand/contract (each step its own migration/deploy):`,
    `  1. expand:   ALTER TABLE ${table} ADD COLUMN ${tmp} ${newType};  -- nullable, no default: instant`,
    `  2. sync:     a trigger that sets NEW.${tmp} := NEW.${column}::${newType} on INSERT and UPDATE`,
    `  3. backfill: UPDATE ${table} SET ${tmp} = ${column}::${newType} in keyset batches (WHERE key > $last ORDER BY key LIMIT n)`,
    `  4. constrain ${tmp} the safe way (CHECK ... NOT VALID + VALIDATE, indexes CONCURRENTLY)`,
    `  5. switch:   deploy the application reading and writing ${tmp}`,
    `  6. contract: drop the trigger; mark ${column} deprecated; drop it in a later deploy (rename ${tmp} if needed behind a view)`,
    `Or let cutover run it as a blue-green table change: a plan whose target is a shadow copy of`,
    `${table} with ${column} as ${newType} (mapping: ${column} -> "${column}"::${newType}, and back), which creates`,
    `the shadow table, installs two-way sync triggers, backfills by key, verifies checksums and`,
    `shifts traffic 10% -> 50% -> 100% with an undo at every step.`,
  ].join('\n');
}

export function renameColumnSuggestion(table: string, from: string, to: string): string {
  return [
    `Expand/contract (each step its own migration/deploy):`,
    `  1. expand:   ALTER TABLE ${table} ADD COLUMN ${to} <same type as ${from}>;`,
    `  2. sync:     a trigger keeping ${to} and ${from} equal on INSERT and UPDATE (whichever one the writer set)`,
    `  3. backfill: UPDATE ${table} SET ${to} = ${from} in keyset batches`,
    `  4. switch:   deploy the application reading and writing ${to}`,
    `  5. contract: drop the trigger; COMMENT ON COLUMN ${table}.${from} IS 'deprecated: renamed to ${to}'; drop ${from} in a later deploy`,
    `Or run it as a cutover blue-green table change (shadow table with ${to}, mapping ${to} <- "${from}" and back).`,
  ].join('\n');
}

export function renameTableSuggestion(from: string, to: string): string {
  return [
    `Expand/contract:`,
    `  1. in one transaction: ALTER TABLE ${from} RENAME TO ${to}; CREATE VIEW ${from} AS SELECT * FROM ${to};`,
    `     (a simple view is updatable, so old code keeps reading and writing through it)`,
    `  2. deploy the application using ${to}`,
    `  3. in a later deploy: DROP VIEW ${from};`,
    `Ignore this finding with a reason on step 1 once the view is in place.`,
  ].join('\n');
}
