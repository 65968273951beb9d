import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'contracts',
    include: ['test/**/*.test.ts'],
    // Compile once before any worker starts, so parallel test files never race on artifacts/.
    globalSetup: ['test/global-setup.ts'],
    // A clean compile of the system takes ~20 s on these machines; every test file runs its own
    // in-process chain.
    testTimeout: 120_000,
    hookTimeout: 240_000,
  },
});
