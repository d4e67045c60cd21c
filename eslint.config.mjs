// ESLint flat config: typescript-eslint's type-aware rules on src/, test/ and tools/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // .testenv*: every test control plane's state (.testenv-node holds the real node's image layers).
  { ignores: ['dist/', 'build/', 'node_modules/', '.testenv*/', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        project: ['./tsconfig.json', './test/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // The dependency rule of the tools (demo, benchmarks, test control plane): src/ only, never test/.
    files: ['tools/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/test', '**/test/**'],
              message: 'tools/ imports src/ only: move what it needs from test/ into tools/',
            },
          ],
        },
      ],
    },
  },
);
