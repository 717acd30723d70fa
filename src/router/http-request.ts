/**
 * A small HTTP client over fetch with a hard timeout, a bounded body and errors that say what
 * went wrong (connection refused, DNS, timeout) instead of fetch's bare "fetch failed".
 */
export interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Bytes of the response body kept. */
  bodyLimit?: number;
}

export interface HttpResponse {
  status: number;
  body: string;
  /** True when the body was longer than bodyLimit and was cut. */
  truncated: boolean;
}

export class HttpRequestError extends Error {
  override name = 'HttpRequestError';
  constructor(
    message: string,
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([timeout, req.signal]) : timeout;
  const target = displayUrl(req.url);
  try {
    const res = await fetch(req.url, {
      method: req.method ?? 'GET',
      headers: req.headers,
      body: req.body,
      signal,
      redirect: 'manual',
    });
    const { text, truncated } = await readBounded(res, req.bodyLimit ?? 64 * 1024);
    return { status: res.status, body: text, truncated };
  } catch (err) {
    if (timeout.aborted) {
      throw new HttpRequestError(`${target}: no response within ${req.timeoutMs} ms`, true);
    }
    if (req.signal?.aborted) throw new HttpRequestError(`${target}: cancelled`, false);
    throw new HttpRequestError(`${target}: ${describeFetchError(err)}`, false);
  }
}

async function readBounded(
  res: Response,
  limit: number,
): Promise<{ text: string; truncated: boolean }> {
  if (!res.body) return { text: '', truncated: false };
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.length > limit) {
      parts.push(value.subarray(0, limit - size));
      truncated = true;
      await reader.cancel();
      break;
    }
    parts.push(value);
    size += value.length;
  }
  return { text: Buffer.concat(parts).toString('utf8'), truncated };
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (cause?.code === 'ENOTFOUND') return 'host not found';
  if (cause?.code === 'ECONNRESET') return 'connection reset';
  if (cause?.message) return cause.message;
  return (err as Error).message ?? String(err);
}

/** The URL without credentials or query string, safe for messages and Temporal histories. */
/** Whether a response status is the one expected: any of `expected`, or any 2xx when none is given. */
export function statusAccepted(status: number, expected: number | number[] | undefined): boolean {
  if (expected === undefined) return status >= 200 && status < 300;
  return (Array.isArray(expected) ? expected : [expected]).includes(status);
}

/** "200 or 204", or "2xx" when no status is given: for messages about an unexpected answer. */
export function expectedStatusText(expected: number | number[] | undefined): string {
  if (expected === undefined) return '2xx';
  return (Array.isArray(expected) ? expected : [expected]).join(' or ');
}

export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

/**
 * Header values named by environment variable: plans (and so Temporal histories) carry only
 * the variable's name, the worker reads the secret from its own environment.
 */
export function resolveHeaders(
  headers: Record<string, string> | undefined,
  headersFromEnv: Record<string, string> | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = { ...headers };
  for (const [name, variable] of Object.entries(headersFromEnv ?? {})) {
    const value = env[variable];
    if (value === undefined) {
      throw new Error(`header ${name} needs environment variable ${variable}, which is not set`);
    }
    out[name] = value;
  }
  return out;
}
