// Governance in fast-forward, for simulations on a throwaway hardhat devnet: each published
// candidate is activated at once, as if holders had voted it through, and a policy change takes
// effect at once. The timelock (admin of the registry and the policy) is impersonated with
// hardhat_impersonateAccount, so the contracts' own `activate` and `setPolicy` run with their
// real access control and range checks; no contract or coordinator code is bypassed.
import { Contract, JsonRpcProvider, JsonRpcSigner, toBeHex } from 'ethers';
import {
  type CommonsAddresses,
  commonsAbis,
  encodePolicy,
  type FederationPolicy,
  hashToBytes32,
} from '@commons/chain';

interface Sent {
  wait(): Promise<unknown>;
}

export class DevnetGovernance {
  private readonly provider: JsonRpcProvider;
  private readonly addresses: CommonsAddresses;
  private ready: Promise<{ registry: Contract; policy: Contract }> | null = null;

  constructor(rpcUrl: string, addresses: CommonsAddresses) {
    this.provider = new JsonRpcProvider(rpcUrl, undefined, { cacheTimeout: -1 });
    this.addresses = addresses;
  }

  /** Makes `hash` the active model (ModelRegistry.activate from the timelock). */
  async activate(hash: string): Promise<void> {
    const { registry } = await (this.ready ??= this.impersonate());
    const tx = (await registry.getFunction('activate').send(hashToBytes32(hash))) as Sent;
    await tx.wait();
  }

  /** Puts `policy` in force (FederationPolicy.setPolicy from the timelock). */
  async setPolicy(policy: FederationPolicy): Promise<void> {
    const contracts = await (this.ready ??= this.impersonate());
    const tx = (await contracts.policy.getFunction('setPolicy').send(encodePolicy(policy))) as Sent;
    await tx.wait();
  }

  destroy(): void {
    this.provider.destroy();
  }

  private async impersonate(): Promise<{ registry: Contract; policy: Contract }> {
    const timelock = this.addresses.contracts.timelock;
    await this.provider.send('hardhat_impersonateAccount', [timelock]);
    await this.provider.send('hardhat_setBalance', [timelock, toBeHex(10n ** 20n)]);
    // Not provider.getSigner: that insists the node lists the account in eth_accounts.
    const signer = new JsonRpcSigner(this.provider, timelock);
    const { modelRegistry, federationPolicy } = this.addresses.contracts;
    return {
      registry: new Contract(modelRegistry, commonsAbis.modelRegistry, signer),
      policy: new Contract(federationPolicy, commonsAbis.federationPolicy, signer),
    };
  }
}
