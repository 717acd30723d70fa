/**
 * Plan files: YAML text → validated PlanFile. Every problem is reported as
 * `<file>: <field path>: <what is wrong and what to do>`, all of them at once.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../errors';
import { planSchema, type PlanFile } from './schema';
import { offlineProblems } from './stages';

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

/** Field names the schema accepts at `path`, for "unknown field" hints; undefined if unknown. */
function knownFields(path: ReadonlyArray<PropertyKey>): string[] | undefined {
  let s: unknown = planSchema;
  const unwrap = (x: unknown): unknown => {
    for (;;) {
      const def = (x as { _zod?: { def?: { type?: string; innerType?: unknown; in?: unknown } } })
        ._zod?.def;
      if (def?.innerType) x = def.innerType;
      else if (def?.type === 'pipe') x = def.in;
      else return x;
    }
  };
  for (const part of path) {
    s = unwrap(s);
    const def = (s as { _zod: { def: { type: string; element?: unknown; shape?: object } } })._zod
      .def;
    if (typeof part === 'number' && def.type === 'array') s = def.element;
    else if (def.type === 'object' && def.shape && part in def.shape)
      s = (def.shape as Record<PropertyKey, unknown>)[part];
    else return undefined;
  }
  const def = (unwrap(s) as { _zod: { def: { type: string; shape?: object } } })._zod.def;
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
}

function zodProblems(error: z.ZodError): PlanProblem[] {
  return error.issues.map((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const known = knownFields(iss.path);
      const names = iss.keys.map((k) => JSON.stringify(k)).join(', ');
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
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          path: '',
          message: `line ${pos.line}, column ${pos.col}: invalid YAML (${e.message.split('\n')[0]}): fix the indentation or quoting there`,
        };
      }),
    );
  }
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PlanError(fileName, [
      {
        path: '',
        message: 'a plan is a YAML mapping (name:, source:, target:, …); see plans/ for examples',
      },
    ]);
  }
  const parsed = planSchema.safeParse(data);
  if (!parsed.success) throw new PlanError(fileName, zodProblems(parsed.error));
  const { problems } = offlineProblems(parsed.data);
  if (problems.length > 0) throw new PlanError(fileName, problems);
  return parsed.data;
}

/** Reads and validates a plan file; errors name the file by its base name. */
export async function loadPlanFile(path: string): Promise<PlanFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read plan file ${path}: ${(err as Error).message}`);
  }
  return parsePlan(text, basename(path));
}
