import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'desktop',
    include: ['test/**/*.test.ts'],
    // Core services talk to a real chain and train real models; browser tests drive Chromium.
    testTimeout: 180_000,
    hookTimeout: 240_000,
  },
});
