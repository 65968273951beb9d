// What the deploy command does against a JSON-RPC chain: reuse a deployment recorded in the
// addresses file if it is still there, otherwise deploy, fund and delegate the development
// accounts (devnet), and write the addresses file.
import { existsSync } from 'node:fs';
import { Wallet, parseEther } from 'ethers';
import {
  readAddressesFile,
  writeAddressesFile,
  type CommonsAddresses,
  CommonsClient,
} from '@commons/chain';
import {
  DEVNET_GOVERNANCE,
  PRODUCTION_GOVERNANCE,
  deployCommons,
  type DeployOptions,
} from './deploy.ts';
import { DEV_ACCOUNT_KEYS, DEVNET_CHAIN_ID, devnetProvider } from './devnet.ts';

export interface RpcDeployOptions extends Omit<DeployOptions, 'bytecode' | 'distribution'> {
  rpcUrl: string;
  /** Deployer key; on the devnet (chain 31337) defaults to development account 0. */
  privateKey?: string;
  /** Where to write (and look for) the addresses file. */
  out: string;
  /** Reuse the deployment in `out` if its contracts are on this chain (default true). */
  reuse?: boolean;
  /** Explicit initial distribution; default on the devnet: the development accounts. */
  distribution?: DeployOptions['distribution'];
  /** Devnet: how many development accounts receive tokens and delegate to themselves. */
  devAccounts?: number;
  /** Devnet: tokens each development account receives (base units). */
  devAccountAmount?: bigint;
}

export async function deployToRpc(
  options: RpcDeployOptions,
): Promise<{ addresses: CommonsAddresses; reused: boolean }> {
  const log = options.log ?? (() => {});
  const provider = devnetProvider(options.rpcUrl);
  const chainId = Number((await provider.getNetwork()).chainId);

  if ((options.reuse ?? true) && existsSync(options.out)) {
    const recorded = await readAddressesFile(options.out);
    if (recorded.chainId === chainId) {
      try {
        await new CommonsClient(provider, recorded).assertDeployed();
        log(`reusing the deployment in ${options.out}`);
        return { addresses: recorded, reused: true };
      } catch {
        log(`${options.out} names contracts that are not on this chain: deploying anew`);
      }
    }
  }

  const devnet = chainId === DEVNET_CHAIN_ID;
  const key = options.privateKey ?? (devnet ? DEV_ACCOUNT_KEYS[0] : undefined);
  if (!key) throw new Error(`Chain ${chainId} is not the devnet: pass the deployer key (--key)`);
  const deployer = new Wallet(key, provider);

  const devWallets = devnet
    ? DEV_ACCOUNT_KEYS.slice(0, options.devAccounts ?? 5).map((k) => new Wallet(k, provider))
    : [];
  const distribution =
    options.distribution ??
    (devWallets.length > 0
      ? devWallets.map((wallet) => ({
          account: wallet.address,
          amount: options.devAccountAmount ?? parseEther('100000'),
        }))
      : undefined);

  const addresses = await deployCommons(deployer, {
    ...options,
    // Seconds-long governance on the devnet unless told otherwise.
    governance: { ...(devnet ? DEVNET_GOVERNANCE : PRODUCTION_GOVERNANCE), ...options.governance },
    ...(distribution ? { distribution } : {}),
  });
  // Tokens vote only once delegated: each development account delegates to itself.
  const client = new CommonsClient(provider, addresses);
  for (const wallet of devWallets) {
    await client.withSigner(wallet).delegate();
  }
  if (devWallets.length > 0) log(`funded and delegated ${devWallets.length} development accounts`);
  await writeAddressesFile(options.out, addresses);
  log(`wrote ${options.out}`);
  return { addresses, reused: false };
}
