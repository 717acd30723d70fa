/**
 * CLI start-up benchmark (not a test): npm run bench:cli (also run by npm run bench)
 *
 *   BENCH_CLI_RUNS=15   runs per command (the median counts)
 *
 * Builds dist/ first (what scripts/setup.sh does), then times, interleaved so that load on the
 * machine hits every command alike:
 *   node -e 0                       the floor: starting node itself
 *   cutover --help                  target: within 3× of node -e 0  → cli_help_vs_node
 *   cutover lint <one migration>    target: at most 0.5 s           → lint_one_file_s
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { projectRoot } from '../src/tools';

export interface CliStartFigures {
  node_e0_s: number;
  cli_help_s: number;
  cli_help_vs_node: number;
  lint_one_file_s: number;
  runs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function timeOnce(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: projectRoot, stdio: 'ignore' });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}`);
  return seconds;
}

export function cliStartFigures(runs = Number(process.env.BENCH_CLI_RUNS ?? 15)): CliStartFigures {
  const build = spawnSync(process.execPath, [join(projectRoot, 'scripts/build.mjs')], {
    stdio: 'inherit',
  });
  if (build.status !== 0) throw new Error('the CLI build failed');
  const cli = join(projectRoot, 'bin/cutover.js');
  const commands = {
    node: ['-e', '0'],
    help: [cli, '--help'],
    lint: [cli, 'lint', join(projectRoot, 'migrations/0001_create_users.up.sql')],
  };
  const times: Record<keyof typeof commands, number[]> = { node: [], help: [], lint: [] };
  // One warm-up round fills the page cache; it is not counted.
  for (const args of Object.values(commands)) timeOnce(args);
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(commands))
      times[name as keyof typeof commands].push(timeOnce(args));
  }
  const node = median(times.node);
  const help = median(times.help);
  return {
    node_e0_s: node,
    cli_help_s: help,
    cli_help_vs_node: help / node,
    lint_one_file_s: median(times.lint),
    runs,
  };
}

export function formatCliStart(f: CliStartFigures): string[] {
  const s = (x: number) => `${x.toFixed(3)} s`;
  return [
    `CLI start (median of ${f.runs}): node -e 0 ${s(f.node_e0_s)}, cutover --help ${s(f.cli_help_s)}`,
    `cli_help_vs_node  ${f.cli_help_vs_node.toFixed(2)}×  (target ≤ 3×) ${f.cli_help_vs_node <= 3 ? 'OK' : 'MISSED'}`,
    `lint_one_file_s   ${f.lint_one_file_s.toFixed(3)}  (target ≤ 0.5) ${f.lint_one_file_s <= 0.5 ? 'OK' : 'MISSED'}`,
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(formatCliStart(cliStartFigures()).join('\n'));
}
