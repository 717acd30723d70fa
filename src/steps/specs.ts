/**
 * The step-kind registry, pure side: what the workflow needs to know about each kind (activity
 * options, undo policy) and what docs and stage rules are derived from. No I/O and only type
 * imports of the schemas, so the deterministic workflow bundle may import it.
 */
import { spec as addColumn } from './addColumn/spec';
import { spec as addConstraint } from './addConstraint/spec';
import { spec as approval } from './approval/spec';
import { spec as backfill } from './backfill/spec';
import { spec as backfillColumn } from './backfillColumn/spec';
import { spec as backup } from './backup/spec';
import { spec as batchMigrate } from './batchMigrate/spec';
import { spec as cleanup } from './cleanup/spec';
import { spec as createIndex } from './createIndex/spec';
import { spec as deprecate } from './deprecate/spec';
import { spec as drop } from './drop/spec';
import { spec as hook } from './hook/spec';
import { spec as index } from './index/spec';
import { spec as monitor } from './monitor/spec';
import { spec as rename } from './rename/spec';
import { spec as route } from './route/spec';
import type { ResolvedStepOf, StepKind } from './schemas';
import { spec as setNotNull } from './setNotNull/spec';
import { spec as shadow } from './shadow/spec';
import { spec as sqlcheck } from './sqlcheck/spec';
import { spec as swap } from './swap/spec';
import { spec as sync } from './sync/spec';
import type { StepSpec } from './types';
import { spec as verify } from './verify/spec';

export const stepSpecs = {
  backup,
  shadow,
  sync,
  backfill,
  index,
  verify,
  sqlcheck,
  approval,
  route,
  monitor,
  hook,
  addColumn,
  backfillColumn,
  setNotNull,
  createIndex,
  addConstraint,
  batchMigrate,
  deprecate,
  drop,
  swap,
  rename,
  cleanup,
} satisfies { [K in StepKind]: StepSpec<ResolvedStepOf<K>> };

/** The docs/plans.md "Step kinds" table, generated from the specs (tests/docs keeps them equal). */
export function stepKindsTable(): string[] {
  const rows = (Object.keys(stepSpecs) as StepKind[]).map((kind) => {
    const s: StepSpec<never> = stepSpecs[kind];
    const undo =
      s.undo.kind === 'undo'
        ? `undo: ${s.undo.text}`
        : s.undo.kind === 'none'
          ? `no undo, point of no return: ${s.undo.text}`
          : `nothing to undo: ${s.undo.text}`;
    return [`\`${kind}\``, s.fields, `${s.summary}; ${undo}`];
  });
  return rows.map((r) => `| ${r.join(' | ')} |`);
}
