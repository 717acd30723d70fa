import { z } from 'zod';

const httpUrl = z.string().refine((s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol), {
  message: 'must be an http:// or https:// URL',
});

/** Header name → value. Values end up in Temporal histories: put secrets in headersFromEnv. */
const headers = z.record(z.string(), z.string());
/** Header name → name of an environment variable the worker reads the value from. */
const headersFromEnv = z.record(z.string(), z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/));

export const postgresRouterSchema = z.object({ kind: z.literal('postgres') }).strict();

export const webhookRouterSchema = z
  .object({
    kind: z.literal('webhook'),
    url: httpUrl,
    timeoutMs: z.number().int().positive().max(600_000).default(10_000),
    headers: headers.optional(),
    headersFromEnv: headersFromEnv.optional(),
  })
  .strict();

export const commandRouterSchema = z
  .object({
    kind: z.literal('command'),
    command: z.string().trim().min(1, 'command must not be empty'),
    timeoutMs: z.number().int().positive().max(3_600_000).default(60_000),
  })
  .strict();

/**
 * How a route change reaches the traffic: the PostgreSQL ledger alone (applications follow it
 * with createRouter), or additionally an HTTP webhook or a shell command (load balancers,
 * feature-flag services). The plan loader reuses this schema.
 */
export const routerConfigSchema = z.discriminatedUnion('kind', [
  postgresRouterSchema,
  webhookRouterSchema,
  commandRouterSchema,
]);

export type RouterConfig = z.input<typeof routerConfigSchema>;
export type ResolvedRouterConfig = z.output<typeof routerConfigSchema>;
export {
  httpUrl as httpUrlSchema,
  headers as headersSchema,
  headersFromEnv as headersFromEnvSchema,
};
