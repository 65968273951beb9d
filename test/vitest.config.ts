import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'test',
    include: ['**/*.test.ts'],
    // End to end: a chain, a coordinator and contributor processes training real rounds.
    testTimeout: 300_000,
    hookTimeout: 180_000,
  },
});
