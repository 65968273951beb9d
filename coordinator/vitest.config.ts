import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'coordinator',
    include: ['test/**/*.test.ts'],
    // Rounds train real models and talk to a real chain on 2 cores.
    testTimeout: 180_000,
    hookTimeout: 240_000,
  },
});
