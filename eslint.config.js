// Lint: typescript-eslint's recommended rules (syntax only, no type information, so it runs in seconds on
// a 2-core box) plus the few rules that caught real mistakes here. Formatting is prettier's job.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'src/dashboard/web/vendor/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      // Unused names are usually leftovers of a refactor; a leading underscore says "on purpose".
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Errors must carry a code: plain `throw 'x'` loses the stack and the code.
      'no-throw-literal': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // a let read by a closure before its one assignment (components wired to each other) stays a let
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // tests read JSON reports and MQTT payloads loosely; src must type what it reads
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
