/**
 * Step kind `hook`, plan side: a command or an HTTP call. `commandHookSchema` / `httpHookSchema`
 * are the actions as the hookRun / hookUndo activities receive them (./action.ts); the plan
 * writes an action without its `kind` (it follows from `command` or `url`).
 */
import { z } from 'zod';
import { stepName } from '../../plan/fields';
import { headersFromEnvSchema, headersSchema, httpUrlSchema } from '../../router/config';

const timeoutMs = z
  .number()
  .int()
  .positive()
  .max(24 * 3600_000);
const status = z.number().int().min(100).max(599);

export const commandHookSchema = z
  .object({
    kind: z.literal('command'),
    /** A shell command line, or a program and its arguments (run without a shell). */
    command: z.union([
      z.string().trim().min(1, 'command must not be empty'),
      z.array(z.string()).min(1, 'give the program and its arguments'),
    ]),
    timeoutMs: timeoutMs.default(600_000),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
    cwd: z.string().min(1).optional(),
  })
  .strict();

export const httpHookSchema = z
  .object({
    kind: z.literal('http'),
    url: httpUrlSchema,
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
    /** A string is sent as is; anything else as JSON. */
    body: z.unknown().optional(),
    headers: headersSchema.optional(),
    headersFromEnv: headersFromEnvSchema.optional(),
    timeoutMs: timeoutMs.default(60_000),
    /** Accepted status codes; any 2xx when omitted. */
    expectStatus: z.union([status, z.array(status).min(1)]).optional(),
  })
  .strict();

export const actionSchema = z.discriminatedUnion('kind', [commandHookSchema, httpHookSchema]);

/** A hook step's config; `undo` (same shape, without its own undo) runs when the run rolls back. */
export const hookSchema = z.discriminatedUnion('kind', [
  commandHookSchema.extend({ undo: actionSchema.optional() }),
  httpHookSchema.extend({ undo: actionSchema.optional() }),
]);

export type HookConfig = z.input<typeof hookSchema>;
export type HookAction = z.input<typeof actionSchema>;
export type ResolvedAction = z.output<typeof actionSchema>;

/**
 * One action of a hook step (./action.ts): `command` (a shell line, or [program, args]
 * run without a shell) or `url` (an HTTP call). The action's kind follows from which of the two is
 * given, so plans need not repeat it; an explicit `kind: command | http` is accepted too.
 */
const oneAction =
  'give exactly one of command (a shell command line, or [program, arguments]) or url (an http(s) URL to call)';

export const hookActionSchema = z.preprocess(
  (v, ctx) => {
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: `is required: ${oneAction}` });
      return z.NEVER;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      ctx.addIssue({ code: 'custom', message: `must be a mapping: ${oneAction}` });
      return z.NEVER;
    }
    if ('kind' in v) return v;
    const hasCommand = 'command' in v;
    if (hasCommand === 'url' in v) {
      ctx.addIssue({ code: 'custom', message: oneAction });
      return z.NEVER;
    }
    return { kind: hasCommand ? 'command' : 'http', ...v };
  },
  z.discriminatedUnion('kind', [commandHookSchema, httpHookSchema], {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? 'kind must be command or http (or leave kind out: it follows from command or url)'
        : undefined,
  }),
);

export type PlanHookAction = z.output<typeof hookActionSchema>;

export const schema = z.strictObject({
  kind: z.literal('hook'),
  name: stepName.optional(),
  run: hookActionSchema,
  undo: hookActionSchema.optional(),
});

/**
 * A hook step as the workflow receives it: `hook` is exactly the config of the hookRun and
 * hookUndo activities: the plan's `run` action with its `undo` inside.
 */
export interface ResolvedHookStep {
  kind: 'hook';
  id: string;
  name?: string;
  hook: HookConfig;
}

export function resolve(step: z.output<typeof schema>, id: string): ResolvedHookStep {
  return {
    kind: 'hook',
    id,
    ...(step.name !== undefined ? { name: step.name } : {}),
    hook: { ...step.run, ...(step.undo ? { undo: step.undo } : {}) },
  };
}
