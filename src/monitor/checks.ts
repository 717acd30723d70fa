/**
 * Monitoring checks run during a traffic-shift window: an HTTP health URL, an SQL query
 * compared with a threshold, a Prometheus instant query compared with a threshold. A check
 * that cannot run (timeout, connection refused, bad answer) is a FAILED check with a detail
 * saying why, never an exception: a monitoring window must be able to decide on every tick.
 */
import pg from 'pg';
import { z } from 'zod';
import { connectionUrl } from '../db/connect';
import { isSafeIdent } from '../db/ident';
import { headersFromEnvSchema, headersSchema, httpUrlSchema } from '../router/config';
import {
  displayUrl,
  expectedStatusText,
  httpRequest,
  resolveHeaders,
  statusAccepted,
} from '../router/http-request';
import { tail } from '../router/output-buffer';

export const comparisonOperators = ['<', '<=', '>', '>=', '=', '!='] as const;
export type ComparisonOperator = (typeof comparisonOperators)[number];

const op = z.enum(comparisonOperators, {
  error: `op must be one of ${comparisonOperators.join(' ')}`,
});
const timeoutMs = z.number().int().positive().max(300_000).default(5000);
const name = z.string().trim().min(1).max(200).optional();

const regex = z.string().refine(
  (s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be a valid regular expression' },
);

export const httpCheckSchema = z
  .object({
    kind: z.literal('http'),
    name,
    url: httpUrlSchema,
    method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
    /** Accepted status codes; any 2xx when omitted. */
    expectStatus: z
      .union([
        z.number().int().min(100).max(599),
        z.array(z.number().int().min(100).max(599)).min(1),
      ])
      .optional(),
    bodyContains: z.string().min(1).optional(),
    bodyMatches: regex.optional(),
    timeoutMs,
    headers: headersSchema.optional(),
    headersFromEnv: headersFromEnvSchema.optional(),
  })
  .strict();

export const sqlCheckSchema = z
  .object({
    kind: z.literal('sql'),
    name,
    /** Named connection (see src/db/connect.ts). */
    connection: z
      .string()
      .refine(isSafeIdent, { message: 'must be a connection name (letters, digits, _)' })
      .default('default'),
    /** A read-only query returning one row with one numeric column. */
    query: z.string().trim().min(1),
    op,
    threshold: z.number(),
    timeoutMs,
  })
  .strict();

export const prometheusCheckSchema = z
  .object({
    kind: z.literal('prometheus'),
    name,
    /** Prometheus base URL, e.g. http://prometheus:9090 (…/api/v1/query is added). */
    url: httpUrlSchema,
    query: z.string().trim().min(1),
    op,
    threshold: z.number(),
    timeoutMs,
    headers: headersSchema.optional(),
    headersFromEnv: headersFromEnvSchema.optional(),
  })
  .strict();

/** The check config the plan loader reuses. */
export const checkSchema = z.discriminatedUnion('kind', [
  httpCheckSchema,
  sqlCheckSchema,
  prometheusCheckSchema,
]);

export type CheckConfig = z.input<typeof checkSchema>;
export type ResolvedCheck = z.output<typeof checkSchema>;
export type HttpCheck = z.input<typeof httpCheckSchema>;
export type SqlCheck = z.input<typeof sqlCheckSchema>;
export type PrometheusCheck = z.input<typeof prometheusCheckSchema>;

export interface CheckResult {
  name: string;
  kind: 'http' | 'sql' | 'prometheus';
  ok: boolean;
  /** HTTP status, or the measured number; null when the check could not measure anything. */
  value: number | null;
  /** One line for humans: what was measured against what, or why it could not run. */
  detail: string;
  /** ISO timestamp of when the check finished. */
  at: string;
}

export interface RunCheckOptions {
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export function compare(value: number, operator: ComparisonOperator, threshold: number): boolean {
  switch (operator) {
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '=':
      return value === threshold;
    case '!=':
      return value !== threshold;
  }
}

/** Parses a check config, throwing an Error whose message names the bad field. */
export function parseCheck(config: unknown): ResolvedCheck {
  const parsed = checkSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length ? `${issue.path.join('.')}: ` : '';
    throw new Error(`invalid check: ${at}${issue.message}`);
  }
  return parsed.data;
}

export function checkName(check: ResolvedCheck): string {
  if (check.name) return check.name;
  switch (check.kind) {
    case 'http':
      return `http ${displayUrl(check.url)}`;
    case 'sql':
      return `sql ${oneLine(check.query, 60)}`;
    case 'prometheus':
      return `prometheus ${oneLine(check.query, 60)}`;
  }
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Runs one check. Never throws: a check that cannot run is a failed result. */
export async function runCheck(
  config: CheckConfig,
  opts: RunCheckOptions = {},
): Promise<CheckResult> {
  let check: ResolvedCheck;
  try {
    check = parseCheck(config);
  } catch (err) {
    const kind = (config as { kind?: string })?.kind;
    return result(
      (config as { name?: string })?.name ?? 'invalid check',
      kind === 'http' || kind === 'sql' || kind === 'prometheus' ? kind : 'http',
      false,
      null,
      (err as Error).message,
    );
  }
  const label = checkName(check);
  try {
    switch (check.kind) {
      case 'http':
        return await runHttp(check, label, opts);
      case 'sql':
        return await runSql(check, label, opts);
      case 'prometheus':
        return await runPrometheus(check, label, opts);
    }
  } catch (err) {
    return result(label, check.kind, false, null, `could not run: ${(err as Error).message}`);
  }
}

/** Runs checks concurrently; results in the same order. */
export function runChecks(
  configs: CheckConfig[],
  opts: RunCheckOptions = {},
): Promise<CheckResult[]> {
  return Promise.all(configs.map((c) => runCheck(c, opts)));
}

function result(
  name: string,
  kind: CheckResult['kind'],
  ok: boolean,
  value: number | null,
  detail: string,
): CheckResult {
  return { name, kind, ok, value, detail, at: new Date().toISOString() };
}

type Of<K extends ResolvedCheck['kind']> = Extract<ResolvedCheck, { kind: K }>;

async function runHttp(check: Of<'http'>, label: string, opts: RunCheckOptions) {
  const started = Date.now();
  const res = await httpRequest({
    url: check.url,
    method: check.method,
    headers: resolveHeaders(check.headers, check.headersFromEnv, opts.env),
    timeoutMs: check.timeoutMs,
    signal: opts.signal,
    bodyLimit: 256 * 1024,
  });
  const ms = Date.now() - started;
  const statusOk = statusAccepted(res.status, check.expectStatus);
  if (!statusOk) {
    const want = expectedStatusText(check.expectStatus);
    const body = res.body.trim() ? `: ${tail(oneLine(res.body, 200), 200)}` : '';
    return result(label, 'http', false, res.status, `HTTP ${res.status}, expected ${want}${body}`);
  }
  if (check.bodyContains !== undefined && !res.body.includes(check.bodyContains)) {
    return result(
      label,
      'http',
      false,
      res.status,
      `HTTP ${res.status} but the body does not contain ${JSON.stringify(check.bodyContains)}`,
    );
  }
  if (check.bodyMatches !== undefined && !new RegExp(check.bodyMatches).test(res.body)) {
    return result(
      label,
      'http',
      false,
      res.status,
      `HTTP ${res.status} but the body does not match /${check.bodyMatches}/`,
    );
  }
  return result(label, 'http', true, res.status, `HTTP ${res.status} in ${ms} ms`);
}

async function runSql(check: Of<'sql'>, label: string, opts: RunCheckOptions) {
  const client = new pg.Client({
    connectionString: connectionUrl(check.connection, opts.env),
    application_name: 'cutover-monitor',
    connectionTimeoutMillis: check.timeoutMs,
    // Also bounds a query the server never answers (network gone): statement_timeout cannot.
    query_timeout: check.timeoutMs + 1000,
  });
  client.on('error', () => {});
  const onAbort = () => void client.end().catch(() => {});
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    try {
      await client.connect();
    } catch (err) {
      return result(
        label,
        'sql',
        false,
        null,
        `cannot connect to database: ${(err as Error).message}`,
      );
    }
    let rows: unknown[][];
    try {
      await client.query('BEGIN READ ONLY');
      await client.query(`SELECT set_config('statement_timeout', $1, true)`, [
        `${check.timeoutMs}ms`,
      ]);
      const res = await client.query({ text: check.query, rowMode: 'array' });
      rows = res.rows as unknown[][];
      await client.query('ROLLBACK');
    } catch (err) {
      const e = err as { code?: string; message: string };
      const why =
        e.code === '57014'
          ? `query ran longer than ${check.timeoutMs} ms and was cancelled`
          : e.code === '25006'
            ? `query tried to write (checks run read-only): ${e.message}`
            : `query failed: ${e.message}`;
      return result(label, 'sql', false, null, why);
    }
    if (rows.length !== 1 || rows[0]!.length !== 1) {
      const shape = rows.length === 1 ? `${rows[0]!.length} columns` : `${rows.length} rows`;
      return result(
        label,
        'sql',
        false,
        null,
        `query must return one row with one value, got ${shape}`,
      );
    }
    const raw = rows[0]![0];
    const value = toNumber(raw);
    if (value === null) {
      return result(
        label,
        'sql',
        false,
        null,
        `query returned ${JSON.stringify(raw)}, not a number`,
      );
    }
    return compared(label, 'sql', value, check.op, check.threshold);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await client.end().catch(() => {});
  }
}

async function runPrometheus(check: Of<'prometheus'>, label: string, opts: RunCheckOptions) {
  const base = check.url.replace(/\/+$/, '');
  const endpoint = base.endsWith('/api/v1/query') ? base : `${base}/api/v1/query`;
  const url = `${endpoint}?${new URLSearchParams({ query: check.query }).toString()}`;
  const res = await httpRequest({
    url,
    headers: {
      accept: 'application/json',
      ...resolveHeaders(check.headers, check.headersFromEnv, opts.env),
    },
    timeoutMs: check.timeoutMs,
    signal: opts.signal,
    bodyLimit: 1024 * 1024,
  });
  let body: PromResponse;
  try {
    body = JSON.parse(res.body) as PromResponse;
  } catch {
    return result(
      label,
      'prometheus',
      false,
      null,
      `HTTP ${res.status} with a body that is not Prometheus JSON${res.truncated ? ' (too large)' : ''}`,
    );
  }
  if (res.status !== 200 || body.status !== 'success') {
    const why = body.error ? `${body.errorType ?? 'error'}: ${body.error}` : `HTTP ${res.status}`;
    return result(label, 'prometheus', false, null, `query failed: ${why}`);
  }
  const data = body.data;
  let raw: unknown;
  if (data?.resultType === 'scalar') {
    raw = (data.result as [number, string])[1];
  } else if (data?.resultType === 'vector') {
    const series = data.result as { value: [number, string] }[];
    if (series.length === 0) {
      return result(label, 'prometheus', false, null, 'query returned no series (empty vector)');
    }
    raw = series[0]!.value[1];
  } else {
    return result(
      label,
      'prometheus',
      false,
      null,
      `query returned a ${data?.resultType ?? 'missing'} result; use an instant query giving a scalar or a vector`,
    );
  }
  const value = toNumber(raw);
  if (value === null || Number.isNaN(value)) {
    return result(
      label,
      'prometheus',
      false,
      null,
      `query returned ${JSON.stringify(raw)}, not a number`,
    );
  }
  return compared(label, 'prometheus', value, check.op, check.threshold);
}

interface PromResponse {
  status?: string;
  error?: string;
  errorType?: string;
  data?: { resultType?: string; result?: unknown };
}

function compared(
  label: string,
  kind: CheckResult['kind'],
  value: number,
  operator: ComparisonOperator,
  threshold: number,
): CheckResult {
  const ok = compare(value, operator, threshold);
  const detail = ok
    ? `${value} ${operator} ${threshold}`
    : `${value} is not ${operator} ${threshold}`;
  return result(label, kind, ok, value, detail);
}

function toNumber(raw: unknown): number | null {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'bigint') return Number(raw);
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'string' && raw.trim() !== '') {
    const n = Number(raw);
    // Prometheus writes NaN and ±Inf as strings; Number() reads "+Inf" as NaN, so map them.
    if (raw === '+Inf' || raw === 'Inf') return Infinity;
    if (raw === '-Inf') return -Infinity;
    return Number.isNaN(n) && raw !== 'NaN' ? null : n;
  }
  return null;
}
