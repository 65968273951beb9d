// The local development chain: `hardhat node` on 127.0.0.1:8545 with Hardhat's well-known
// accounts (public test mnemonic: never hold real funds with these keys).
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { HDNodeWallet, JsonRpcProvider } from 'ethers';
import { contractsRootDir } from './paths.ts';

export const DEVNET_RPC_URL = 'http://127.0.0.1:8545';
export const DEVNET_CHAIN_ID = 31337;
const DEV_MNEMONIC = 'test test test test test test test test test test test junk';

/** Private keys of Hardhat's first 10 development accounts (index 0 deploys). */
export const DEV_ACCOUNT_KEYS: readonly string[] = (() => {
  const root = HDNodeWallet.fromPhrase(DEV_MNEMONIC, undefined, "m/44'/60'/0'/0");
  return Array.from({ length: 10 }, (_, i) => root.deriveChild(i).privateKey);
})();

/** Whether a JSON-RPC chain answers at `rpcUrl`; its chain id if so. */
export async function probeChain(rpcUrl: string): Promise<number | null> {
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(2000),
    });
    const body = (await response.json()) as { result?: string };
    return body.result ? Number(body.result) : null;
  } catch {
    return null;
  }
}

/**
 * Starts `hardhat node` (this package's config) and resolves once it answers JSON-RPC. Its
 * output (accounts, then one line per RPC call) is shown only with `output: 'inherit'`.
 */
export async function startHardhatNode(
  port = 8545,
  output: 'inherit' | 'ignore' = 'ignore',
): Promise<ChildProcess> {
  const require = createRequire(import.meta.url);
  const cli = path.join(path.dirname(require.resolve('hardhat/package.json')), 'dist/src/cli.js');
  const child = spawn(
    process.execPath,
    [cli, 'node', '--hostname', '127.0.0.1', '--port', String(port)],
    {
      cwd: contractsRootDir,
      stdio: ['ignore', output, 'inherit'],
    },
  );
  const rpcUrl = `http://127.0.0.1:${port}`;
  const started = Date.now();
  while (Date.now() - started < 120_000) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited with code ${child.exitCode}`);
    if ((await probeChain(rpcUrl)) !== null) return child;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  child.kill();
  throw new Error(`hardhat node did not answer on ${rpcUrl} within 120 s`);
}

/** A provider for tools that talk to a devnet (no response cache: time may jump). */
export function devnetProvider(rpcUrl = DEVNET_RPC_URL): JsonRpcProvider {
  return new JsonRpcProvider(rpcUrl, undefined, { cacheTimeout: -1 });
}
