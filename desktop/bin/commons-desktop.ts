#!/usr/bin/env node
// commons-desktop: the desktop app. Opens the Electron window when Electron's binary is
// installed and runs; otherwise serves the very same UI to a browser on 127.0.0.1 (web mode)
// and prints the address to open, with this launch's token in the fragment.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '@commons/shared/errors';
import { startBridge } from '../src/bridge/server.ts';
import { startHost } from '../src/main/host.ts';
import {
  parseLaunchOptions,
  toArgv,
  USAGE,
  type LaunchOptions,
} from '../src/main/launch-options.ts';
import { RENDERER_DIR } from '../src/main/renderer-files.ts';

const desktopDir = fileURLToPath(new URL('..', import.meta.url));
const BUILD_HINT = 'Build the UI first: npm run build -w desktop';

/**
 * The Electron binary if it is installed and answers `--version`; otherwise why not. Read the
 * way the electron package's index.js does, but without its fallback, which would try to
 * download the binary on every start of a machine that has none.
 */
function findElectron(): { path: string } | { reason: string } {
  let packageDir: string;
  try {
    packageDir = path.dirname(createRequire(import.meta.url).resolve('electron/package.json'));
  } catch {
    return { reason: 'the electron package is not installed' };
  }
  const pathFile = path.join(packageDir, 'path.txt');
  if (!existsSync(pathFile)) return { reason: 'the Electron binary is not installed' };
  const relative = readFileSync(pathFile, 'utf8').trim();
  const binary = process.env.ELECTRON_OVERRIDE_DIST_PATH
    ? path.join(process.env.ELECTRON_OVERRIDE_DIST_PATH, relative)
    : path.join(packageDir, 'dist', relative);
  if (!existsSync(binary)) return { reason: 'the Electron binary is not installed' };
  const probe = spawnSync(binary, ['--version'], { timeout: 20_000, encoding: 'utf8' });
  if (probe.status !== 0) {
    return { reason: `Electron did not run (${probe.error?.message ?? `exit ${probe.status}`})` };
  }
  return { path: binary };
}

async function runElectron(binary: string, options: LaunchOptions): Promise<number> {
  const preload = path.join(desktopDir, 'dist/electron/preload.cjs');
  if (!existsSync(path.join(RENDERER_DIR, 'index.html')) || !existsSync(preload)) {
    throw new Error(`The desktop UI has not been built. ${BUILD_HINT}`);
  }
  console.log('Commons: starting the desktop window (Electron).');
  const child = spawn(
    binary,
    [path.join(desktopDir, 'src/main/main.ts'), '--', ...toArgv(options)],
    {
      stdio: 'inherit',
    },
  );
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

async function runWeb(options: LaunchOptions, why: string): Promise<void> {
  if (!existsSync(path.join(RENDERER_DIR, 'index.html'))) {
    throw new Error(`The web UI has not been built. ${BUILD_HINT}`);
  }
  const host = await startHost({ launch: options, mode: 'web' });
  const bridge = await startBridge({
    dispatcher: host.dispatcher,
    events: host.events,
    rendererDir: RENDERER_DIR,
    port: options.port,
  }).catch(async (error: unknown) => {
    await host.close();
    throw error;
  });
  console.log(`Commons is running in web mode (${why}).`);
  console.log(`Data folder: ${options.dataDir}`);
  console.log(
    "Open this address in your browser (it holds this launch's access token; do not share it):",
  );
  console.log(`\n  ${bridge.url}\n`);
  console.log('Press Ctrl+C to stop.');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log('Commons: stopping…');
    void bridge
      .close()
      .then(() => host.close())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function main(): Promise<void> {
  const options = parseLaunchOptions(process.argv.slice(2));
  if (options.help) {
    console.log(USAGE);
    return;
  }
  if (options.mode === 'web') return runWeb(options, 'asked for with --web');
  const electron = findElectron();
  if ('path' in electron) {
    process.exitCode = await runElectron(electron.path, options);
    return;
  }
  if (options.mode === 'electron') {
    throw new Error(
      `--electron was given but ${electron.reason}. Install it with: npx install-electron (needs the internet)`,
    );
  }
  return runWeb(options, electron.reason);
}

main().catch((error: unknown) => {
  console.error(`commons-desktop: ${errorMessage(error)}`);
  process.exit(1);
});
