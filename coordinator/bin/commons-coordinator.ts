#!/usr/bin/env node
// commons-coordinator: runs the federated-learning coordinator until SIGINT/SIGTERM.
import { readFile, stat } from 'node:fs/promises';
import { errorMessage } from '@commons/shared/errors';
import { COORDINATOR_USAGE, ConfigError, configFromArgs } from '../src/config.ts';
import { startCoordinator } from '../src/coordinator.ts';
import { startScaleOutNode } from '../src/cluster/node.ts';

async function readKeyFile(file: string): Promise<string> {
  const info = await stat(file);
  // A key readable by others is a key already leaked: refuse, as ssh does.
  if ((info.mode & 0o077) !== 0) {
    throw new ConfigError(`${file} is readable by other users; chmod 600 it`);
  }
  return readFile(file, 'utf8');
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(COORDINATOR_USAGE);
} else {
  try {
    const config = await configFromArgs(argv, process.env, readKeyFile);
    // --redis: one node of several sharing Redis; otherwise the embedded single process.
    const coordinator = config.redis
      ? await startScaleOutNode(config)
      : await startCoordinator(config);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      coordinator.log.info({ signal }, 'shutting down');
      coordinator.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  } catch (error) {
    const text = errorMessage(error);
    console.error(`commons-coordinator: ${text}`);
    if (error instanceof ConfigError) console.error(COORDINATOR_USAGE);
    process.exit(error instanceof ConfigError ? 2 : 1);
  }
}
