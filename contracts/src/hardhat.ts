// The Hardhat runtime for this package's tooling (tests, bench, ABI export). The deploy path and
// the typed client never import this file: they run on plain ethers against any JSON-RPC chain.
import path from 'node:path';
import type { HardhatRuntimeEnvironment } from 'hardhat/types/hre';
import { createHardhatRuntimeEnvironment } from 'hardhat/hre';
import config from '../hardhat.config.ts';
import { contractsRootDir as contractsRoot } from './paths.ts';

export { contractsRoot };

/** Creates a Hardhat runtime for this project, whatever the current directory. */
export async function createHre(): Promise<HardhatRuntimeEnvironment> {
  return createHardhatRuntimeEnvironment(
    config,
    { config: path.join(contractsRoot, 'hardhat.config.ts') },
    contractsRoot,
  );
}

/** Compiles the contracts (a no-op when nothing changed) and returns the runtime. */
export async function compile(hre?: HardhatRuntimeEnvironment): Promise<HardhatRuntimeEnvironment> {
  const runtime = hre ?? (await createHre());
  await runtime.tasks.getTask('build').run({ quiet: true, noTests: true });
  return runtime;
}
