import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookRun, hookUndo, hookValidate, runHookAction } from '../../src/steps/hook/action';
import { deadUrl, startServer, waitFor, type LocalServer } from '../router/helpers';
import { alive, readPid } from './proc';

const dir = mkdtempSync(join(tmpdir(), 'cutover-hook-'));

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected the hook to fail');
}

describe('command hooks', () => {
  it('runs a shell command with its env and returns its output', async () => {
    const r = await hookRun({
      kind: 'command',
      command: 'echo "deploying $APP_VERSION"; echo warn >&2',
      env: { APP_VERSION: 'v2' },
      timeoutMs: 5000,
    });
    expect(r.kind).toBe('command');
    expect(r.code).toBe(0);
    expect(r.output).toContain('deploying v2');
    expect(r.output).toContain('warn');
  });

  it('runs a program with arguments without a shell', async () => {
    const r = await hookRun({
      kind: 'command',
      command: ['printf', '%s|', 'a b', '$HOME'],
      timeoutMs: 5000,
    });
    expect(r.output).toBe('a b|$HOME|');
  });

  it('fails on a non-zero exit with the tail of the output in the message', async () => {
    const f = await failure(
      hookRun({
        kind: 'command',
        command:
          'for i in $(seq 1 5000); do echo "line $i"; done; echo "3 tests failed" >&2; exit 4',
        timeoutMs: 10_000,
      }),
    );
    expect(f.type).toBe('HookFailed');
    expect(f.message).toMatch(/^hook `for i in .*` exited with code 4; output:\n/);
    expect(f.message).toContain('3 tests failed');
    // Bounded: the first lines are long gone, the message stays small.
    expect(f.message).not.toContain('line 1\n');
    expect(f.message.length).toBeLessThan(2500);
  });

  it('fails clearly when the program does not exist', async () => {
    const f = await failure(
      hookRun({ kind: 'command', command: ['/no/such/program'], timeoutMs: 5000 }),
    );
    expect(f.type).toBe('HookFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/could not start: .*ENOENT/);
  });

  it('kills the command and its children when the timeout passes', async () => {
    const pidFile = join(dir, 'timeout.pid');
    const f = await failure(
      hookRun({
        kind: 'command',
        command: `sleep 60 & echo $! > '${pidFile}'; echo started; wait`,
        timeoutMs: 500,
      }),
    );
    expect(f.type).toBe('HookTimedOut');
    expect(f.message).toMatch(/timed out after 500 ms and was killed; output:\nstarted/);
    const pid = readPid(pidFile)!;
    expect(pid).toBeGreaterThan(0);
    await waitFor(() => !alive(pid), 'the sleep child to die', 5000);
  });

  it('kills the command when cancelled', async () => {
    const pidFile = join(dir, 'cancel.pid');
    const ac = new AbortController();
    const run = runHookAction(
      { kind: 'command', command: `sleep 60 & echo $! > '${pidFile}'; wait`, timeoutMs: 60_000 },
      { signal: ac.signal },
    );
    await waitFor(() => readPid(pidFile) !== undefined, 'the child to start');
    ac.abort();
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    await waitFor(() => !alive(readPid(pidFile)!), 'the sleep child to die', 5000);
  });

  it('rejects a bad config as non-retryable, running nothing', async () => {
    const f = await failure(hookRun({ kind: 'command', command: '  ', timeoutMs: 5000 }));
    expect(f.type).toBe('HookConfigError');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toBe('hook: command: command must not be empty');
    await expect(hookValidate({ kind: 'command', command: 'true', timeoutMs: 0 })).rejects.toThrow(
      /timeoutMs/,
    );
  });

  it('runs the undo action when there is one, and nothing otherwise', async () => {
    const file = join(dir, 'undo');
    const hook = {
      kind: 'command' as const,
      command: `echo deployed > '${file}'`,
      timeoutMs: 5000,
      undo: { kind: 'command' as const, command: `echo rolled-back > '${file}'`, timeoutMs: 5000 },
    };
    await expect(hookValidate(hook)).resolves.toEqual({ hasUndo: true });
    await hookRun(hook);
    expect(readFileSync(file, 'utf8').trim()).toBe('deployed');
    await hookUndo(hook);
    expect(readFileSync(file, 'utf8').trim()).toBe('rolled-back');
    await expect(
      hookUndo({ kind: 'command', command: 'true', timeoutMs: 5000 }),
    ).resolves.toMatchObject({
      skipped: true,
    });
  });
});

describe('http hooks', () => {
  let server: LocalServer;
  beforeAll(async () => {
    server = await startServer((req, res) => {
      if (req.url === '/deploy') {
        res.statusCode = 202;
        res.end('queued');
      } else if (req.url === '/tests') {
        res.statusCode = 500;
        res.end('integration tests: 2 failed');
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 3000);
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
  });
  afterAll(() => server.close());

  it('sends the body as JSON with headers and accepts 2xx', async () => {
    process.env.HOOK_TEST_TOKEN = 'tok';
    const r = await hookRun({
      kind: 'http',
      url: `${server.url}/deploy`,
      method: 'POST',
      body: { version: 'v2' },
      headersFromEnv: { authorization: 'HOOK_TEST_TOKEN' },
      timeoutMs: 2000,
    });
    expect(r).toMatchObject({ kind: 'http', code: 202, output: 'queued' });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(JSON.parse(req.body)).toEqual({ version: 'v2' });
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe('tok');
  });

  it('fails on an unexpected status with the body in the message', async () => {
    const f = await failure(
      hookRun({ kind: 'http', url: `${server.url}/tests`, method: 'GET', timeoutMs: 2000 }),
    );
    expect(f.type).toBe('HookFailed');
    expect(f.message).toBe(
      `hook GET ${server.url}/tests answered HTTP 500, expected 2xx: integration tests: 2 failed`,
    );
    const g = await failure(
      hookRun({ kind: 'http', url: `${server.url}/deploy`, timeoutMs: 2000, expectStatus: 200 }),
    );
    expect(g.message).toMatch(/answered HTTP 202, expected 200/);
  });

  it('fails on a timeout or a down endpoint', async () => {
    const slow = await failure(
      hookRun({ kind: 'http', url: `${server.url}/slow`, timeoutMs: 200 }),
    );
    expect(slow.type).toBe('HookTimedOut');
    expect(slow.message).toMatch(/no response within 200 ms/);
    const down = await failure(hookRun({ kind: 'http', url: await deadUrl(), timeoutMs: 2000 }));
    expect(down.type).toBe('HookFailed');
    expect(down.message).toMatch(/connection refused/);
  });
});
