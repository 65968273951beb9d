// Two builds from one config, chosen by --mode:
//   (default)         the renderer: React app → dist/renderer (served by Electron and web mode)
//   electron-preload  the sandboxed preload → dist/electron/preload.cjs (a sandboxed preload may
//                     only require 'electron', so everything else is inlined)
// The Electron main process is not built: Electron's Node runs src/main/main.ts by stripping
// types, as Node 24 does for the rest of the project (and the core's worker files need that).
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default defineConfig(({ mode }) => {
  if (mode === 'electron-preload') {
    return {
      build: {
        outDir: path.join(here, 'dist/electron'),
        emptyOutDir: false,
        target: 'chrome140',
        minify: false,
        lib: {
          entry: path.join(here, 'src/preload/preload.ts'),
          formats: ['cjs'],
          fileName: () => 'preload.cjs',
        },
        rollupOptions: { external: ['electron', ...nodeBuiltins] },
      },
    };
  }
  return {
    root: path.join(here, 'src/renderer'),
    // Relative asset URLs: the same build is served from commons://app/ and http://127.0.0.1:port/.
    base: './',
    plugins: [react()],
    build: {
      outDir: path.join(here, 'dist/renderer'),
      emptyOutDir: true,
      target: 'es2022',
      // No inline <script> or data: module preloads: the CSP allows only 'self'.
      modulePreload: { polyfill: false },
      assetsInlineLimit: 0,
    },
  };
});
