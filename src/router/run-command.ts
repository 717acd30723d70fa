import { spawn } from 'node:child_process';
import { OutputTail } from './output-buffer';

export interface RunCommandOptions {
  /** A shell command line (run with /bin/sh -c), or a program and its arguments (no shell). */
  command: string | string[];
  timeoutMs: number;
  /** Added to the worker's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Aborting kills the command (its whole process group). */
  signal?: AbortSignal;
  /** Bytes of combined stdout+stderr kept (the tail). */
  outputLimit?: number;
  /** Time between SIGTERM and SIGKILL when the command must stop. */
  killGraceMs?: number;
  /** Called every `progressEveryMs` while the command runs (e.g. to heartbeat). */
  onProgress?: (elapsedMs: number) => void;
  progressEveryMs?: number;
}

export interface RunCommandResult {
  exitCode: number | null;
  /** Signal that ended the process, when it did not exit by itself. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Tail of stdout and stderr, interleaved as they arrived. */
  output: string;
  durationMs: number;
}

/**
 * Runs a shell command in its own process group, so a timeout or a cancellation kills the
 * command and everything it started (a deploy script's children would otherwise live on).
 * Never throws for the command's own failure: the caller decides what a non-zero exit means.
 */
export function runCommand(opts: RunCommandOptions): Promise<RunCommandResult> {
  const started = Date.now();
  const out = new OutputTail(opts.outputLimit ?? 16 * 1024);
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      resolve({
        exitCode: null,
        signal: null,
        timedOut: false,
        cancelled: true,
        output: '',
        durationMs: 0,
      });
      return;
    }
    const [file, args] =
      typeof opts.command === 'string'
        ? ['/bin/sh', ['-c', opts.command]]
        : [opts.command[0]!, opts.command.slice(1)];
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let timedOut = false;
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;

    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 2000);
    };

    const timeout = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    const progress =
      opts.onProgress &&
      setInterval(() => opts.onProgress!(Date.now() - started), opts.progressEveryMs ?? 1000);
    const onAbort = () => {
      cancelled = true;
      stop();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => out.push(c));
    child.on('error', (err) => {
      clearTimeout(timeout);
      if (progress) clearInterval(progress);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timeout);
      if (progress) clearInterval(progress);
      opts.signal?.removeEventListener('abort', onAbort);
      // The shell is gone but a child that ignored SIGTERM may linger: make sure of it.
      if (timedOut || cancelled) killGroup('SIGKILL');
      if (killTimer) clearTimeout(killTimer);
      resolve({
        exitCode: code,
        signal: sig,
        timedOut,
        cancelled,
        output: out.text(),
        durationMs: Date.now() - started,
      });
    });
  });
}

/** One line describing how a command ended, for error messages. */
export function describeExit(r: RunCommandResult, timeoutMs: number): string {
  if (r.timedOut) return `timed out after ${timeoutMs} ms and was killed`;
  if (r.cancelled) return 'was cancelled and killed';
  if (r.signal) return `was killed by ${r.signal}`;
  return `exited with code ${r.exitCode}`;
}
