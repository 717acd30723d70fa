import { spawn } from 'node:child_process';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Session settings that pg_restore writes at the top of every restore, with the major that
 * introduced each: pg_restore 17+ writes `SET transaction_timeout = 0;` whatever the target, and
 * an older server rejects an unknown parameter, failing the whole restore.
 */
const NEWER_SETTINGS: Array<{ name: string; since: number }> = [
  { name: 'transaction_timeout', since: 17 },
];

/** How far into the script the fixed header reaches; nothing after it is touched. */
const HEADER_BYTES = 16 * 1024;

/**
 * Drops, from the header of a pg_restore script, the SET lines a server of `targetMajor` does
 * not know. Only the header: table data further down passes byte for byte.
 */
export function dropNewerSettings(targetMajor: number): Transform {
  const unknown = NEWER_SETTINGS.filter((s) => s.since > targetMajor).map((s) => s.name);
  const pattern = new RegExp(`^SET (?:${unknown.join('|') || '(?!)'}) = [^\\n]*;\\n`, 'gm');
  let head: Buffer | undefined = Buffer.alloc(0);
  const flushHead = (t: Transform): void => {
    const text = head!.toString('utf8');
    // Only the part before the first statement that is not a session setting is the header.
    const end = text.search(/^(?!SET |SELECT pg_catalog\.set_config|--|\\|$)/m);
    const cut = end < 0 ? text.length : end;
    t.push(Buffer.from(text.slice(0, cut).replace(pattern, '') + text.slice(cut), 'utf8'));
    head = undefined;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!head) return cb(null, chunk);
      head = Buffer.concat([head, chunk]);
      if (head.length >= HEADER_BYTES) flushHead(this);
      cb();
    },
    flush(cb) {
      if (head) flushHead(this);
      cb();
    },
  });
}

/**
 * Runs a SQL script through psql in one transaction, stopping at the first error; rejects with
 * psql's error output. `script` is consumed whole.
 */
export async function runPsqlScript(
  psql: string,
  dbnameArg: string,
  env: NodeJS.ProcessEnv,
  script: Readable,
): Promise<void> {
  const child = spawn(
    psql,
    ['-X', '-q', '--no-password', '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-d', dbnameArg],
    { env, stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run psql (${psql}): ${err.message}`)));
    child.once('close', (code) =>
      code === 0
        ? resolve()
        : reject(
            new Error(`psql failed (exit code ${code}): ${stderr.trim() || 'no error output'}`),
          ),
    );
  });
  // A failing producer must never look like a clean end of script: psql would commit what it
  // had. Kill psql first, so the transaction dies with it.
  script.once('error', () => child.kill('SIGKILL'));
  // psql stops reading at the first error of its own; its exit status then says why.
  const fed = pipeline(script, child.stdin).then(
    () => undefined,
    (err: Error) => err,
  );
  const [psqlResult, feedError] = await Promise.all([
    exited.then(
      () => undefined,
      (err: Error) => err,
    ),
    fed,
  ]);
  if (psqlResult && feedError && script.errored) throw feedError;
  if (psqlResult) throw psqlResult;
}
