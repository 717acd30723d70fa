import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { toolPath } from '../tools';

export const SEARCH_ATTRIBUTES = ['CutoverPlan', 'CutoverTable', 'CutoverStage'];

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** SQLite file: state survives restarts of the server. */
  dbFile: string;
  port: number;
  uiPort: number;
  headless?: boolean;
  log?: (line: string) => void;
}

/**
 * `temporal server start-dev` with a persistent SQLite file, cutover's search attributes and the
 * Web UI: the embedded default for local use and the demo.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  mkdirSync(dirname(opts.dbFile), { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    opts.dbFile,
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
    '--ip',
    '127.0.0.1',
    '--log-level',
    'error',
    ...SEARCH_ATTRIBUTES.flatMap((n) => ['--search-attribute', `${n}=Keyword`]),
    ...(opts.headless ? ['--headless'] : []),
  ];
  const child = spawn(toolPath('temporal'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-4000);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const deadline = Date.now() + 60_000;
  while (!(await canConnect(opts.port))) {
    if (child.exitCode !== null)
      throw new Error(`temporal server start-dev exited (${child.exitCode}):\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `temporal server start-dev did not listen on ${opts.port} within 60s:\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address: `127.0.0.1:${opts.port}`,
    uiUrl: `http://127.0.0.1:${opts.uiPort}`,
    process: child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, host);
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}
