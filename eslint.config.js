// @ts-check
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Every Node built-in, bare and `node:`-prefixed (node:sqlite, node:test exist only prefixed):
// the list comes from Node itself, so a new built-in is banned without anyone editing this file.
const nodeBuiltins = [
  ...new Set(builtinModules.flatMap((m) => [m, `node:${m.replace(/^node:/, '')}`])),
];

/**
 * Modules of src/ that workflow code may import at runtime: pure data and functions with no I/O
 * and no Node built-ins (the workflow bundle is deterministic and sandboxed). Each is linted below
 * so it stays that way. Everything else in src/ is type-only for workflows.
 */
const workflowSafe = [
  'src/plan/run-settings.ts',
  'src/steps/options.ts',
  'src/steps/specs.ts',
  'src/steps/types.ts',
  'src/steps/*/spec.ts',
  'src/temporal/failure-message.ts',
];

/** Composition roots: they wire workflows and activities together, so they may import both. */
const compositionRoots = [
  'src/temporal/worker.ts',
  'src/temporal/runs.ts',
  'src/temporal/deploys.ts',
  'src/temporal/progress.ts',
  'src/cli/**/*.ts',
];

const builtinPaths = (message) => nodeBuiltins.map((name) => ({ name, message }));

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', 'coverage/**', 'dist/**', '.cutover/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Layers (docs/architecture.md): src/ is the library; activities/ and workflows/ sit on top.
    files: ['src/**/*.ts'],
    ignores: compositionRoots,
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/activities/**', '**/workflows/**', '**/activities', '**/workflows'],
              message:
                'src/ is the library: it never imports activities/ or workflows/ (see docs/architecture.md)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/workflows/**'],
              message: 'activities are adapters over src/: they never import workflow code',
            },
          ],
        },
      ],
    },
  },
  {
    // Workflow code is bundled and replayed by Temporal: it must stay deterministic,
    // so Node built-ins (clock, fs, network, randomness) are out of bounds there.
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinPaths('no I/O in workflow code'),
          // Types from the library and activities are fine (erased); their runtime code is not,
          // except the pure modules listed in workflowSafe.
          patterns: [
            {
              regex: `^\\.\\./src/(?!(${workflowSafe.map((f) => f.slice(4, -3).replace('*', '[a-z-]+')).join('|')})$)`,
              allowTypeImports: true,
              message: 'workflow code may import only types from here (or a workflowSafe module)',
            },
            {
              group: ['../activities/**', 'pg', 'zod'],
              allowTypeImports: true,
              message: 'workflow code may import only types from here (or a workflowSafe module)',
            },
          ],
        },
      ],
    },
  },
  {
    // The pure modules workflows import: no I/O, no zod schemas, no library code with I/O.
    files: workflowSafe,
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinPaths('imported by workflow code: no Node built-ins'),
          patterns: [
            {
              regex:
                '^(pg|zod|libpg-query|@temporalio/(activity|client|worker))$|^(\\.\\./)+(db|plan|monitor|router|backup|storage|migrate|lint|cli)/|/(schema|schemas|io|activity|index)$',
              allowTypeImports: true,
              message: 'imported by workflow code: only types from here',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['bin/**/*.js', 'scripts/**/*.mjs', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
