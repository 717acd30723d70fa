/**
 * Plan files: YAML text → validated PlanFile. Every problem is reported as
 * `<file>: <field path>: <what is wrong and what to do>`, all of them at once.
 */
import { basename } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../errors';
import { planFileKind, readInputFile } from '../input/files';
import { yamlErrorMessage, yamlToData } from '../input/yaml';
import { quoteInput } from '../safe-text';
import { planSchema, type PlanFile } from './schema';
import { offlineProblems, planKindProblems } from './stages';

export interface PlanProblem {
  /** Field path, e.g. `mapping.up.total` or `stages[2].steps[0].kind`; empty for the whole file. */
  path: string;
  message: string;
}

/** A plan that cannot be used; the message lists every problem, one per line. */
export class PlanError extends UserError {
  override name = 'PlanError';
  constructor(
    readonly fileName: string,
    readonly problems: PlanProblem[],
  ) {
    super(problems.map((p) => formatProblem(fileName, p)).join('\n'));
  }
}

export function formatProblem(fileName: string, p: PlanProblem): string {
  return p.path ? `${fileName}: ${p.path}: ${p.message}` : `${fileName}: ${p.message}`;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

type ZodDef = {
  type: string;
  innerType?: unknown;
  in?: unknown;
  out?: unknown;
  element?: unknown;
  shape?: Record<string, unknown>;
  options?: unknown[];
  discriminator?: string;
  values?: unknown[];
};
const defOf = (s: unknown): ZodDef | undefined => (s as { _zod?: { def?: ZodDef } })._zod?.def;

/** Strips optional/default/prefault wrappers and pipes down to the schema that validates. */
function unwrap(s: unknown): unknown {
  for (;;) {
    const def = defOf(s);
    if (def?.innerType) s = def.innerType;
    // z.preprocess is pipe(transform, schema): the schema is the `out` side.
    else if (def?.type === 'pipe') s = defOf(def.in)?.type === 'transform' ? def.out : def.in;
    else return s;
  }
}

/**
 * The option of a union that `value` means: the one its discriminator names, else the one whose
 * fields cover most of the value's keys (e.g. a hook action given `command` but no `kind`).
 */
function unionOption(def: ZodDef, value: unknown): unknown {
  const objects = (def.options ?? []).map(unwrap).filter((o) => defOf(o)?.type === 'object');
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (def.discriminator && def.discriminator in v) {
    const hit = objects.find((o) =>
      defOf(unwrap(defOf(o)!.shape![def.discriminator!]))?.values?.includes(v[def.discriminator!]),
    );
    if (hit) return hit;
  }
  let best: unknown;
  let score = -1;
  for (const o of objects) {
    const n = Object.keys(v).filter((k) => k in defOf(o)!.shape!).length;
    if (n > score) [best, score] = [o, n];
  }
  return best;
}

/** Field names the schema accepts at `path` of `data`, for "unknown field" hints. */
function knownFields(path: ReadonlyArray<PropertyKey>, data: unknown): string[] | undefined {
  let s: unknown = planSchema;
  let value = data;
  const resolve = () => {
    s = unwrap(s);
    if (defOf(s)?.type === 'union') s = unwrap(unionOption(defOf(s)!, value));
  };
  for (const part of path) {
    resolve();
    const def = defOf(s);
    if (!def) return undefined;
    if (typeof part === 'number' && def.type === 'array') s = def.element;
    else if (def.type === 'object' && def.shape && typeof part === 'string' && part in def.shape)
      s = def.shape[part];
    else return undefined;
    value = (value as Record<PropertyKey, unknown> | undefined)?.[part];
  }
  resolve();
  const def = defOf(s);
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
}

const article = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

/**
 * Plan-wide wording for zod's generic messages (schemas with their own message keep it): a field
 * path plus "is required" or "must be a number" says what to fix.
 */
const planErrorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === 'invalid_type') {
    const expected = iss.expected === 'object' ? 'mapping' : String(iss.expected);
    return iss.input === undefined
      ? `is required (${article(expected)})`
      : `must be ${article(expected)}`;
  }
  if (iss.code === 'invalid_value')
    return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
  if (iss.code === 'too_small' && iss.origin === 'string') return 'must not be empty';
  if (iss.code === 'too_small' && iss.origin === 'array')
    return `needs at least ${String(iss.minimum)} item(s)`;
  return undefined;
};

function zodProblems(error: z.ZodError, data: unknown): PlanProblem[] {
  return error.issues.map((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const known = knownFields(iss.path, data);
      const names = iss.keys.map((k) => quoteInput(k, 40)).join(', ');
      return {
        path: formatPath(iss.path),
        message:
          `unknown field${iss.keys.length > 1 ? 's' : ''} ${names}: remove ${iss.keys.length > 1 ? 'them' : 'it'} or fix the spelling` +
          (known ? ` (known fields: ${known.join(', ')})` : ''),
      };
    }
    return { path: formatPath(iss.path), message: iss.message };
  });
}

/** Parses and validates plan text. Throws PlanError listing every problem. */
export function parsePlan(text: string, fileName = 'plan.yaml'): PlanFile {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new PlanError(
      fileName,
      doc.errors.map((e) => ({ path: '', message: yamlErrorMessage(e, text, lineCounter) })),
    );
  }
  const js = yamlToData(doc);
  if ('problem' in js) throw new PlanError(fileName, [{ path: '', message: js.problem }]);
  const data = js.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PlanError(fileName, [
      {
        path: '',
        message: 'a plan is a YAML mapping (name:, source:, target:, …); see plans/ for examples',
      },
    ]);
  }
  const parsed = planSchema.safeParse(data, { error: planErrorMap });
  if (!parsed.success) throw new PlanError(fileName, zodProblems(parsed.error, data));
  const { problems } = offlineProblems(parsed.data);
  // Fields an expand/contract plan must not have: only the file says whether they were given.
  const given = planKindProblems(parsed.data, new Set(Object.keys(data)));
  problems.unshift(...given.filter((g) => !problems.some((p) => p.path === g.path)));
  if (problems.length > 0) throw new PlanError(fileName, problems);
  return parsed.data;
}

/** Reads and validates a plan file; errors name the file by its base name. */
export async function loadPlanFile(path: string): Promise<PlanFile> {
  // Size, binary content and unreadable files are refused before YAML sees a byte.
  const { text } = readInputFile(path, planFileKind);
  return parsePlan(text, basename(path));
}
