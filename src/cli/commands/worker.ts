import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { SEARCH_ATTRIBUTES, startDevServer } from '../../temporal/dev-server';
import { parsePositiveInt } from '../options';
import { action } from '../run';

async function runWorker(address?: string): Promise<void> {
  // Temporal's worker (native bridge, webpack) loads only here, not at every CLI start.
  const [{ connectWorker, temporalSettings }, { createWorker }, { TASK_QUEUE }] = await Promise.all(
    [
      import('../../temporal/connection'),
      import('../../temporal/worker'),
      import('../../../workflows/definitions'),
    ],
  );
  const settings = {
    ...temporalSettings(),
    ...(address ? { address, tls: undefined, apiKey: undefined } : {}),
  };
  const connection = await connectWorker(settings);
  const worker = await createWorker(connection, settings.namespace);
  console.log(
    `worker polling task queue "${TASK_QUEUE}" on ${settings.address} (namespace ${settings.namespace}); Ctrl-C stops it`,
  );
  // Worker.run() handles SIGINT/SIGTERM itself: it stops polling and lets running activities
  // see a cancellation, and heartbeated progress lets another worker resume them.
  await worker.run();
  await connection.close();
}

export function register(program: Command): void {
  program
    .command('worker')
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
  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_CERT/KEY/CA, TEMPORAL_API_KEY`,
    )
    .action(action(() => runWorker()));

  program
    .command('dev')
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
      action(async (o: { dbFile: string; port: number; uiPort: number; worker: boolean }) => {
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
          await runWorker(server.address);
        } finally {
          await server.stop();
        }
      }),
    );
}
