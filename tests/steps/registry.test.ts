import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as activities from '../../activities/registry';
import { planSchema } from '../../src/plan/schema';
import { stepIo } from '../../src/steps/io';
import { stepKinds, stepModules, stepSchema } from '../../src/steps/schemas';
import { stepKindsTable, stepSpecs } from '../../src/steps/specs';
import type { StepSpec } from '../../src/steps/types';

/**
 * The step-kind registry is the one source of truth: these tests fail when a kind is known to
 * one table and not another, or when the docs drift from it. (The compiler already demands an
 * entry per kind in specs.ts, io.ts and the workflow's handlers; tests/steps/dispatch.types.ts.)
 */
const spec = (k: string) => (stepSpecs as Record<string, StepSpec<never>>)[k]!;
const norm = (row: string) =>
  row
    .trim()
    .split('|')
    .map((c) => c.trim())
    .join('|');

describe('step-kind registry', () => {
  it('lists the same kinds in the schema, the specs, the I/O table and the plan schema', () => {
    expect(Object.keys(stepSpecs)).toEqual(stepKinds);
    expect(Object.keys(stepIo)).toEqual(stepKinds);
    expect(Object.keys(stepModules)).toEqual(stepKinds);
    for (const kind of stepKinds) {
      // The plan schema's union accepts every registered kind (with its required fields)…
      const minimal: Record<string, unknown> = { kind };
      if (kind === 'route') minimal.percent = 10;
      if (kind === 'monitor') minimal.seconds = 60;
      if (kind === 'hook') minimal.run = { command: 'true' };
      // The expand/contract kinds name their table and what they change in it.
      const t = { table: 'public.users', column: 'c' };
      const expand: Record<string, Record<string, unknown>> = {
        addColumn: { ...t, type: 'text' },
        backfillColumn: { ...t, expression: 'lower(email)' },
        setNotNull: t,
        createIndex: { table: t.table, index: 'i', columns: ['c'] },
        addConstraint: { table: t.table, constraint: 'k', check: 'c > 0' },
        batchMigrate: { migration: 'm', source: { table: 'a' }, module: './m.mjs' },
        deprecate: t,
        drop: t,
      };
      Object.assign(minimal, expand[kind] ?? {});
      expect(stepSchema.safeParse(minimal).success, kind).toBe(true);
    }
    // …and its error message names exactly the registered kinds.
    const bad = planSchema.safeParse({
      name: 'x',
      source: 'orders',
      target: { table: 'o2', like: 'source' },
      stages: [{ name: 's', steps: [{ kind: 'analyze' }] }],
    });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.message).join('\n')).toContain(
      `kind must be one of ${stepKinds.join(', ')}`,
    );
  });

  it('gives every kind a validate, activity options (or a reason it has none) and an undo policy', () => {
    for (const kind of stepKinds) {
      const s = spec(kind);
      expect(typeof stepIo[kind].validate, kind).toBe('function');
      expect(['undo', 'nothing', 'none'], kind).toContain(s.undo.kind);
      expect(s.undo.text.length, kind).toBeGreaterThan(3);
      expect(s.summary.length, kind).toBeGreaterThan(3);
      // A step with an undo has undo options; only approval (a durable wait) runs no activity.
      if (s.undo.kind === 'undo') expect(s.undoOptions, kind).toBeTypeOf('function');
      if (kind === 'approval') expect(s.options).toBeUndefined();
      else expect(s.options, kind).toBeTypeOf('function');
    }
    // The point of no return is explicit, and only a drop and cleanup have it (the swap has an
    // undo, the swap-back; only a plan without a down mapping makes the swap itself final, at
    // run time).
    expect(stepKinds.filter((k) => spec(k).undo.kind === 'none')).toEqual(['drop', 'cleanup']);
  });

  it('exposes each kind’s run and undo through the registered activities', () => {
    const io = stepIo as Record<string, { run?: unknown; undo?: unknown }>;
    // Activities are registered under their export names; each kind's run/undo is one of them.
    const registered = new Set(Object.keys(activities));
    for (const kind of stepKinds) {
      const { run, undo } = io[kind]!;
      if (kind === 'approval') {
        expect(run).toBeUndefined();
        continue;
      }
      expect(run, kind).toBeTypeOf('function');
      expect(registered, `${kind} run`).toContain((run as () => void).name);
      if (spec(kind).undo.kind === 'undo') {
        expect(undo, kind).toBeTypeOf('function');
        expect(registered, `${kind} undo`).toContain((undo as () => void).name);
      }
    }
  });

  it('docs/plans.md has exactly one row per kind, generated from the specs', () => {
    const docs = readFileSync('docs/plans.md', 'utf8');
    const section = docs.slice(docs.indexOf('### Step kinds'), docs.indexOf('### Hook steps'));
    const rows = section
      .split('\n')
      .filter((l) => /^\| `/.test(l))
      .map(norm);
    expect(rows).toEqual(stepKindsTable().map(norm));
  });

  it('derives the stage rules from the specs and the docs say the same', () => {
    const once = stepKinds.filter((k) => spec(k).once);
    expect(once).toEqual([
      'backup',
      'shadow',
      'sync',
      'backfill',
      'index',
      'swap',
      'rename',
      'cleanup',
    ]);
    const docs = readFileSync('docs/plans.md', 'utf8').replace(/\s+/g, ' ');
    expect(docs).toContain(
      `${once
        .slice(0, -1)
        .map((k) => `\`${k}\``)
        .join(', ')} and \`${once.at(-1)}\` appear at most once`,
    );
    const required = stepKinds.filter((k) => spec(k).required);
    expect(docs).toContain(
      `${required
        .slice(0, -1)
        .map((k) => `\`${k}\``)
        .join(', ')} and \`${required.at(-1)}\` are required`,
    );
  });
});
