// Deployment: final roles, the addresses file, genesis resolution, CLI options, and the deploy
// command against a real `hardhat node` (idempotent: a second run reuses the deployment).
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ZeroAddress, ZeroHash, parseEther } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseAddresses,
  readAddressesFile,
  writeAddressesFile,
  COORDINATOR_ROLE,
  CommonsClient,
  MINTER_ROLE,
} from '@commons/chain';
import { parseDeployArgs } from '../src/cli.ts';
import { DEVNET_GOVERNANCE, PRODUCTION_GOVERNANCE } from '../src/deploy.ts';
import { deployToRpc } from '../src/deploy-rpc.ts';
import { DEV_ACCOUNT_KEYS, startHardhatNode } from '../src/devnet.ts';
import { resolveGenesis } from '../src/genesis.ts';
import { GENESIS_HASH, TEST_GOVERNANCE, deployFixture, type Fixture } from './fixture.ts';

let f: Fixture;
let dir: string;
beforeAll(async () => {
  f = await deployFixture();
  dir = await mkdtemp(path.join(tmpdir(), 'commons-deploy-'));
});

describe('deployCommons', () => {
  it('leaves the timelock in charge and the deployer with no role', async () => {
    const { client, addresses, accounts } = f;
    const { contracts } = addresses;
    const has = async (key: keyof typeof contracts, role: string, account: string) =>
      (await client.contracts[key].getFunction('hasRole').staticCall(role, account)) as boolean;
    const timelockRole = async (name: string) =>
      (await client.contracts.timelock.getFunction(name).staticCall()) as string;
    const deployer = accounts.deployer.address;

    for (const key of [
      'token',
      'modelRegistry',
      'federationPolicy',
      'contributionRewards',
    ] as const) {
      expect(await has(key, ZeroHash, contracts.timelock)).toBe(true);
      expect(await has(key, ZeroHash, deployer)).toBe(false);
    }
    expect(await has('timelock', ZeroHash, deployer)).toBe(false);
    expect(await has('timelock', ZeroHash, contracts.timelock)).toBe(true);
    expect(await has('timelock', await timelockRole('PROPOSER_ROLE'), contracts.governor)).toBe(
      true,
    );
    expect(await has('timelock', await timelockRole('CANCELLER_ROLE'), contracts.governor)).toBe(
      true,
    );
    expect(await has('timelock', await timelockRole('PROPOSER_ROLE'), deployer)).toBe(false);
    expect(await has('timelock', await timelockRole('EXECUTOR_ROLE'), ZeroAddress)).toBe(true);
    expect(await has('token', MINTER_ROLE, contracts.contributionRewards)).toBe(true);
    expect(await has('token', MINTER_ROLE, deployer)).toBe(false);
    const coordinator = accounts.coordinator.address;
    expect(await has('modelRegistry', COORDINATOR_ROLE, coordinator)).toBe(true);
    expect(await has('contributionRewards', COORDINATOR_ROLE, coordinator)).toBe(true);
    // Rewards pay only rounds registered in this deployment's registry.
    expect(await client.contracts.contributionRewards.getFunction('registry').staticCall()).toBe(
      contracts.modelRegistry,
    );
  });

  it('applies the governance settings and timestamp clock', async () => {
    const { client } = f;
    const { proposalThreshold, ...rest } = TEST_GOVERNANCE;
    expect(await client.governanceSettings()).toEqual({ ...rest, proposalThreshold });
    const token = client.contracts.token;
    expect(await token.getFunction('CLOCK_MODE').staticCall()).toBe('mode=timestamp');
    expect(await client.clock()).toBe(await f.now());
    expect(await token.getFunction('symbol').staticCall()).toBe('CMNS');
  });

  it('returns addresses that round-trip through the addresses file', async () => {
    const file = path.join(dir, 'nested', 'addresses.json');
    await writeAddressesFile(file, f.addresses);
    expect(await readAddressesFile(file)).toEqual(f.addresses);
    expect(f.addresses.genesis.hash).toBe(GENESIS_HASH);
    expect(() => parseAddresses({ ...f.addresses, contracts: { token: 'nope' } })).toThrow(
      /Invalid Commons addresses/,
    );
    await expect(readAddressesFile(path.join(dir, 'missing.json'))).rejects.toThrow(
      /npm run deploy -w contracts/,
    );
  });
});

describe('genesis resolution', () => {
  const hex = 'AB'.repeat(32);

  it('takes an explicit hash, with or without 0x, and defaults the URI', async () => {
    expect(await resolveGenesis({ hash: hex })).toEqual({
      hash: '0x' + 'ab'.repeat(32),
      uri: 'sha256:' + 'ab'.repeat(32),
    });
    expect(await resolveGenesis({ hash: '0x' + hex, uri: 'https://x/y' })).toEqual({
      hash: '0x' + 'ab'.repeat(32),
      uri: 'https://x/y',
    });
  });

  it('reads the manifest when no hash is given', async () => {
    const manifestPath = path.join(dir, 'manifest.json');
    await writeFile(manifestPath, JSON.stringify({ hash: 'cd'.repeat(32), uri: 'models/genesis' }));
    expect(await resolveGenesis({ manifestPath })).toEqual({
      hash: '0x' + 'cd'.repeat(32),
      uri: 'models/genesis',
    });
  });

  it('fails clearly when there is neither a hash nor a manifest', async () => {
    await expect(resolveGenesis({ manifestPath: path.join(dir, 'none.json') })).rejects.toThrow(
      /No genesis model: pass --genesis-hash/,
    );
    await expect(resolveGenesis({ hash: 'not-a-hash' })).rejects.toThrow(/Not a sha256 digest/);
  });
});

describe('deploy command options', () => {
  it('prefers flags over environment variables and applies presets and overrides', async () => {
    const options = await parseDeployArgs(
      [
        '--genesis-hash',
        'ef'.repeat(32),
        '--preset',
        'production',
        '--voting-period',
        '60',
        '--fresh',
      ],
      { COMMONS_RPC_URL: 'http://chain:8545', COMMONS_GENESIS_HASH: '12'.repeat(32) },
    );
    expect(options?.rpcUrl).toBe('http://chain:8545');
    expect(options?.genesis.hash).toBe('0x' + 'ef'.repeat(32));
    expect(options?.reuse).toBe(false);
    expect(options?.governance).toEqual({ ...PRODUCTION_GOVERNANCE, votingPeriod: 60 });
    await expect(
      parseDeployArgs(['--quorum', 'x', '--genesis-hash', GENESIS_HASH], {}),
    ).rejects.toThrow(/--quorum must be a non-negative integer/);
    expect(await parseDeployArgs(['--help'], {})).toBeNull();
  });
});

describe('deploy command against hardhat node', () => {
  let node: ChildProcess | undefined;
  // A port of its own, so a devnet on 8545 is never disturbed.
  const port = 18545 + (process.pid % 1000);
  afterAll(() => {
    node?.kill('SIGINT');
  });

  it('deploys with devnet settings, funds and delegates dev accounts, then reuses', async () => {
    node = await startHardhatNode(port);
    const rpcUrl = `http://127.0.0.1:${port}`;
    const out = path.join(dir, 'devnet', 'addresses.json');
    const genesis = { hash: GENESIS_HASH, uri: 'sha256:genesis' };
    const first = await deployToRpc({ rpcUrl, out, genesis, devAccounts: 3 });
    expect(first.reused).toBe(false);
    expect(first.addresses.chainId).toBe(31337);
    expect(first.addresses.governance.votingPeriod).toBe(DEVNET_GOVERNANCE.votingPeriod);
    expect(await readAddressesFile(out)).toEqual(first.addresses);

    const client = await CommonsClient.connect({ rpcUrl, addresses: out });
    expect((await client.activeModel()).contentHash).toBe(GENESIS_HASH);
    const { Wallet } = await import('ethers');
    const dev2 = new Wallet(DEV_ACCOUNT_KEYS[2]!).address;
    expect(await client.votes(dev2)).toBe(parseEther('100000'));

    const second = await deployToRpc({ rpcUrl, out, genesis });
    expect(second.reused).toBe(true);
    expect(second.addresses).toEqual(first.addresses);
  });
});
