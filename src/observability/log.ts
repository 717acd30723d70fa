/**
 * Structured logs for the worker: pino writes one JSON object per line (workflowId, runId, plan,
 * stage and activity fields included), and on a terminal a small formatter prints the same
 * records as readable lines. It is the Temporal Runtime's logger, so the SDK's, the workflows'
 * (`log` from @temporalio/workflow) and the activities' log calls all come out here.
 */
import { Writable } from 'node:stream';
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import { pino, type Logger as Pino } from 'pino';
import { planOfWorkflowId } from './metrics';

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** A terminal line for a pino record: time, level, message, then the ids and other fields. */
export function prettyLine(record: Record<string, unknown>): string {
  const { time, level, msg, pid: _pid, hostname: _host, ...rest } = record;
  const when = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const fields = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${when} ${(LEVEL_NAMES[level as number] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${fields ? `  ${fields}` : ''}\n`;
}

function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        try {
          out.write(prettyLine(JSON.parse(line) as Record<string, unknown>));
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}

/**
 * The worker's logger. JSON unless `pretty` (default: stdout is a terminal and CUTOVER_LOG_FORMAT
 * is not "json"); level from CUTOVER_LOG_LEVEL (default info).
 */
export function createLogger(
  options: { pretty?: boolean; level?: string; destination?: NodeJS.WritableStream } = {},
): Pino {
  const out = options.destination ?? process.stdout;
  const pretty =
    options.pretty ??
    (Boolean((out as { isTTY?: boolean }).isTTY) && process.env.CUTOVER_LOG_FORMAT !== 'json');
  const level = options.level ?? process.env.CUTOVER_LOG_LEVEL ?? 'info';
  return pino({ level, base: undefined }, pretty ? prettyStream(out) : out);
}

const TEMPORAL_TO_PINO: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Temporal's Logger interface over pino. Workflow and activity records carry workflowId and runId
 * (the SDK adds them); `plan` is added from the workflow id, and `stage` comes with the
 * workflow's stage-change records.
 */
export class PinoTemporalLogger implements Logger {
  constructor(private readonly pino: Pino) {}

  log(level: LogLevel, message: string, meta: LogMetadata = {}): void {
    const fields: Record<string, unknown> = { ...meta };
    if (typeof fields.workflowId === 'string' && fields.plan === undefined)
      fields.plan = planOfWorkflowId(fields.workflowId);
    this.pino[TEMPORAL_TO_PINO[level] ?? 'info'](fields, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
