import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'shared',
    include: ['test/**/*.test.ts'],
    // tfjs maths is CPU-bound and the machines have 2 cores.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
