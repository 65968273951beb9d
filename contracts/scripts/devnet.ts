// npm run devnet -w contracts -- [deploy options]: a local chain with Commons deployed.
// Starts `hardhat node` on 127.0.0.1:8545 unless one already answers there, deploys (or reuses
// the deployment in the addresses file), funds and delegates the development accounts, writes
// the addresses file, and keeps the node running until Ctrl-C.
import type { ChildProcess } from 'node:child_process';
import { DEPLOY_USAGE, parseDeployArgs } from '../src/cli.ts';
import { deployToRpc } from '../src/deploy-rpc.ts';
import { DEV_ACCOUNT_KEYS, probeChain, startHardhatNode } from '../src/devnet.ts';

let node: ChildProcess | null = null;
try {
  const options = await parseDeployArgs(process.argv.slice(2));
  if (!options) {
    console.log(DEPLOY_USAGE);
  } else {
    const url = new URL(options.rpcUrl);
    if ((await probeChain(options.rpcUrl)) === null) {
      if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') {
        throw new Error(
          `Nothing answers at ${options.rpcUrl}, and a devnet can only start locally`,
        );
      }
      console.log(`starting hardhat node on ${options.rpcUrl} ...`);
      node = await startHardhatNode(Number(url.port || 8545));
    } else {
      console.log(`a chain already answers at ${options.rpcUrl}`);
    }
    const { addresses, reused } = await deployToRpc(options);
    console.log(reused ? 'Commons was already deployed:' : 'Commons deployed:');
    console.log(JSON.stringify(addresses.contracts, null, 2));
    console.log(`addresses file: ${options.out}`);
    console.log(`development account 0 (deployer) key: ${DEV_ACCOUNT_KEYS[0]}`);
    if (node) {
      console.log('devnet running; Ctrl-C stops it');
      const child = node;
      const stop = () => child.kill('SIGINT');
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      await new Promise((resolve) => child.on('exit', resolve));
    }
  }
} catch (error) {
  console.error(`devnet: ${error instanceof Error ? error.message : String(error)}`);
  node?.kill('SIGINT');
  process.exitCode = 1;
}
