import { defineConfig } from 'vitest/config';

// One runner for the whole repository: each package is a Vitest project with its own
// config (the contracts project compiles once in a global setup), plus the cross-package
// tests in test/.
export default defineConfig({
  test: {
    projects: ['shared', 'contracts', 'coordinator', 'desktop', 'test'],
  },
});
