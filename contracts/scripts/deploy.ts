// npm run deploy -w contracts -- [options]: deploys Commons to a JSON-RPC chain (see --help).
import { DEPLOY_USAGE, parseDeployArgs } from '../src/cli.ts';
import { deployToRpc } from '../src/deploy-rpc.ts';

try {
  const options = await parseDeployArgs(process.argv.slice(2));
  if (!options) {
    console.log(DEPLOY_USAGE);
  } else {
    const { addresses } = await deployToRpc(options);
    console.log(JSON.stringify(addresses, null, 2));
  }
} catch (error) {
  console.error(`deploy: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
