/**
 * docs/temporal.md stays true to the code: the signal, update and query names it documents are
 * exactly those workflows/definitions.ts defines, their inputs are what the handlers accept, and
 * every `temporal` command line uses flags the real Temporal CLI has.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { toolPath } from '../../src/tools';
import {
  abortSignal,
  approveSignal,
  approveUpdate,
  pauseSignal,
  planSearchAttribute,
  resumeSignal,
  stageSearchAttribute,
  statusQuery,
  tableSearchAttribute,
  TASK_QUEUE,
  throttleProblems,
  throttleSignal,
  throttleUpdate,
  workflowIdFor,
  type ThrottleRequest,
} from '../../workflows/definitions';
import {
  flagsOf,
  flagValue,
  helpOf,
  outputOf,
  readDoc,
  shellCommands,
  subcommand,
} from './doc-commands';

const doc = readDoc('docs/temporal.md');
const temporalCommands = shellCommands(doc).filter((w) => w[0] === 'temporal');
const byPath = (path: string) => temporalCommands.filter((w) => subcommand(w).join(' ') === path);
const namesSent = (path: string) => new Set(byPath(path).map((w) => flagValue(w, '--name')));

const signals = [approveSignal, abortSignal, pauseSignal, resumeSignal, throttleSignal].map(
  (s) => s.name,
);
const updates = [approveUpdate, throttleUpdate].map((u) => u.name);
const searchAttributes = [planSearchAttribute, tableSearchAttribute, stageSearchAttribute].map(
  (k) => k.name,
);

/** A row of the page's summary table, e.g. "Signals". */
function summaryRow(label: string): string[] {
  const row = doc.split('\n').find((l) => l.startsWith(`| ${label} `));
  expect(row, `summary table row ${label}`).toBeDefined();
  return [...row!.split('|')[2]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

describe('docs/temporal.md names', () => {
  it('lists exactly the defined signals, updates, query and search attributes', () => {
    expect(new Set(summaryRow('Signals'))).toEqual(new Set(signals));
    expect(new Set(summaryRow('Updates'))).toEqual(new Set(updates));
    expect(summaryRow('Query')).toEqual([statusQuery.name]);
    expect(new Set(summaryRow('Search attributes').filter((n) => n !== 'Keyword'))).toEqual(
      new Set(searchAttributes),
    );
    expect(summaryRow('Task queue')).toEqual([TASK_QUEUE]);
  });

  it('shows a `temporal workflow signal` command for every signal, and only for those', () => {
    expect(namesSent('workflow signal')).toEqual(new Set(signals));
  });

  it('shows `temporal workflow update execute` for every update, and only for those', () => {
    expect(namesSent('workflow update execute')).toEqual(new Set(updates));
  });

  it('shows `temporal workflow query` for the status query', () => {
    expect(namesSent('workflow query')).toEqual(new Set([statusQuery.name]));
  });

  it('describes every message in the signals table', () => {
    for (const name of [...signals, ...updates, statusQuery.name])
      expect(doc, name).toMatch(new RegExp(`^\\| \`${name}\` +\\|`, 'm'));
  });

  it('uses the workflow id cutover derives from the example plan', () => {
    const plan = parse(readDoc('plans/widen-orders-id.yaml')) as { name: string };
    const ids = new Set(
      temporalCommands
        .map((w) => flagValue(w, '--workflow-id'))
        .filter((id): id is string => id !== undefined),
    );
    expect(ids).toEqual(new Set([workflowIdFor(plan.name)]));
    expect(doc).toContain(`\`${workflowIdFor('<plan name>')}\``);
  });

  it('registers every search attribute as Keyword', () => {
    const created = byPath('operator search-attribute create');
    expect(new Set(created.map((w) => flagValue(w, '--name')))).toEqual(new Set(searchAttributes));
    for (const w of created) expect(flagValue(w, '--type')).toBe('Keyword');
  });

  it('documents every connection variable the code reads', () => {
    const code = readDoc('src/temporal/connection.ts');
    const read = new Set([
      ...[...code.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!),
      ...[...code.matchAll(/\bread\('([A-Z][A-Z0-9_]+)'\)/g)].map((m) => m[1]!),
    ]);
    expect(read.size).toBeGreaterThanOrEqual(7);
    for (const name of [...read, 'TEMPORAL_UI_URL']) expect(doc, name).toContain(`\`${name}\``);
  });
});

describe('docs/temporal.md inputs are what the handlers accept', () => {
  const inputs = (path: string, name: string) =>
    byPath(path)
      .filter((w) => flagValue(w, '--name') === name)
      .map((w) => flagValue(w, '--input'));

  it('approve / approveGate take an optional gate and who approved', () => {
    const all = [
      ...inputs('workflow signal', approveSignal.name),
      ...inputs('workflow update execute', approveUpdate.name),
    ];
    expect(all.length).toBeGreaterThan(0);
    for (const raw of all) {
      const input = JSON.parse(raw!) as Record<string, unknown>;
      for (const key of Object.keys(input)) expect(['gate', 'by']).toContain(key);
    }
  });

  it('abort carries a reason (and may keep the shadow table)', () => {
    const all = inputs('workflow signal', abortSignal.name);
    expect(all.length).toBeGreaterThan(0);
    for (const raw of all) {
      const input = JSON.parse(raw!) as Record<string, unknown>;
      expect(typeof input.reason).toBe('string');
      for (const key of Object.keys(input)) expect(['reason', 'keepShadow']).toContain(key);
    }
  });

  it('pause and resume take no input', () => {
    for (const name of [pauseSignal.name, resumeSignal.name])
      expect(inputs('workflow signal', name)).toEqual([undefined]);
  });

  it('throttle inputs pass the same validation the update handler runs', () => {
    const all = [
      ...inputs('workflow signal', throttleSignal.name),
      ...inputs('workflow update execute', throttleUpdate.name),
    ];
    expect(all.length).toBeGreaterThan(0);
    for (const raw of all)
      expect(throttleProblems(JSON.parse(raw!) as ThrottleRequest)).toEqual([]);
  });
});

describe('docs/temporal.md command lines work with the real temporal CLI', () => {
  it('uses only flags that exist on each subcommand (or global options)', async () => {
    const temporal = toolPath('temporal');
    // `temporal options` (without --help) lists the global and connection flags.
    const globals = await outputOf(temporal, ['options']);
    expect(globals).toMatch(/--namespace/);
    expect(temporalCommands.length).toBeGreaterThan(10);
    for (const words of temporalCommands) {
      const path = subcommand(words);
      const help = await helpOf(temporal, path);
      expect(help, `temporal ${path.join(' ')} is a real command`).toMatch(/Usage:/);
      for (const flag of flagsOf(words)) {
        const known = new RegExp(`(^|[\\s,])${flag}(?=[\\s=,])`, 'm');
        expect(
          known.test(help) || known.test(globals),
          `temporal ${path.join(' ')} has no ${flag}`,
        ).toBe(true);
      }
    }
  });
});
