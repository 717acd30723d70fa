import { createServer as createNetServer } from 'node:net';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { SEARCH_ATTRIBUTES, startDevServer } from '../../temporal/dev-server';
import { parsePositiveInt } from '../options';
import { action } from '../run';

interface WorkerOpts {
  metricsPort?: number;
  metricsHost: string;
}

async function runWorker(address: string | undefined, o: WorkerOpts): Promise<void> {
  // Temporal's worker (native bridge, webpack) loads only here, not at every CLI start.
  const [
    { connectWorker, temporalSettings },
    { createWorker },
    { TASK_QUEUE },
    { Runtime },
    { createLogger, PinoTemporalLogger },
    { startMetricsServer },
  ] = await Promise.all([
    import('../../temporal/connection'),
    import('../../temporal/worker'),
    import('../../../workflows/definitions'),
    import('@temporalio/worker'),
    import('../../observability/log'),
    import('../../observability/server'),
  ]);
  const settings = {
    ...temporalSettings(),
    ...(address ? { address, tls: undefined, apiKey: undefined } : {}),
  };
  const logger = createLogger();
  // Temporal's runtime metrics go to an internal port; the --metrics-port server passes them on
  // after cutover's own, so one scrape target has both.
  const temporalMetricsPort = o.metricsPort !== undefined ? await freePort() : undefined;
  Runtime.install({
    logger: new PinoTemporalLogger(logger),
    telemetryOptions: {
      logging: { forward: {}, filter: { core: 'WARN', other: 'WARN' } },
      ...(temporalMetricsPort
        ? { metrics: { prometheus: { bindAddress: `127.0.0.1:${temporalMetricsPort}` } } }
        : {}),
    },
  });
  const metrics =
    o.metricsPort !== undefined
      ? await startMetricsServer(o.metricsPort, {
          host: o.metricsHost,
          temporalUrl: `http://127.0.0.1:${temporalMetricsPort}/metrics`,
        })
      : undefined;
  const connection = await connectWorker(settings);
  const worker = await createWorker(connection, settings.namespace);
  logger.info(
    {
      taskQueue: TASK_QUEUE,
      address: settings.address,
      namespace: settings.namespace,
      metrics: metrics ? `http://${o.metricsHost}:${metrics.port}/metrics` : undefined,
    },
    `worker polling task queue "${TASK_QUEUE}" on ${settings.address} (namespace ${settings.namespace}); Ctrl-C stops it`,
  );
  // Worker.run() handles SIGINT/SIGTERM itself: it stops polling and lets running activities
  // see a cancellation, and heartbeated progress lets another worker resume them.
  try {
    await worker.run();
  } finally {
    await connection.close();
    await metrics?.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function addWorkerOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--metrics-port <n>',
        "serve Prometheus metrics (cutover's and Temporal's) at http://HOST:N/metrics",
      ).argParser(parsePositiveInt),
    )
    .option('--metrics-host <host>', 'address the metrics server listens on', '0.0.0.0');
}

export function register(program: Command): void {
  addWorkerOptions(program.command('worker'))
    .summary('run a worker: executes cutover workflows and activities')
    .description(
      'Runs the workflows and activities of every cutover run on the "cutover" task queue. Start\n' +
        'as many as you like; a run survives any of them dying. Database connections come from\n' +
        "this process's environment, never from workflow inputs.",
    )
    .addHelpText(
      'after',
      `
Environment:
  DATABASE_URL / CUTOVER_DB_<NAME>_URL   the databases plans name (connection: default / NAME)
  CUTOVER_BACKUP_*                        where backups go (see cutover backup --help)
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_CERT/KEY/CA, TEMPORAL_API_KEY
  CUTOVER_LOG_LEVEL (default info), CUTOVER_LOG_FORMAT=json (JSON even on a terminal)

Logs are JSON lines (workflowId, runId, plan, stage, activity) off a terminal, readable lines on
one. Metrics: docs/metrics.md.`,
    )
    .action(action((o: WorkerOpts) => runWorker(undefined, o)));

  addWorkerOptions(program.command('dev'))
    .summary('start a local Temporal dev server (SQLite, Web UI) plus a worker')
    .description(
      "Starts `temporal server start-dev` with a persistent SQLite file, registers cutover's search\n" +
        `attributes (${SEARCH_ATTRIBUTES.join(', ')}), and runs a worker against it. Stop with Ctrl-C;\n` +
        'start again with the same --db-file and open runs continue where they were.',
    )
    .option('--db-file <path>', 'SQLite file holding the server state', '.cutover/temporal.db')
    .addOption(new Option('--port <n>', 'gRPC port').default(7233).argParser(parsePositiveInt))
    .addOption(new Option('--ui-port <n>', 'Web UI port').default(8233).argParser(parsePositiveInt))
    .option('--no-worker', 'start only the server')
    .action(
      action(
        async (
          o: WorkerOpts & { dbFile: string; port: number; uiPort: number; worker: boolean },
        ) => {
          const server = await startDevServer({
            dbFile: resolve(o.dbFile),
            port: o.port,
            uiPort: o.uiPort,
          });
          console.log(
            `Temporal dev server at ${server.address}, state in ${resolve(o.dbFile)}\nWeb UI: ${server.uiUrl}`,
          );
          const stop = () => void server.stop().then(() => process.exit(0));
          if (!o.worker) {
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
            await new Promise(() => {});
          }
          try {
            await runWorker(server.address, o);
          } finally {
            await server.stop();
          }
        },
      ),
    );
}
