// Command-line options of the deploy and devnet commands (flags win over environment variables).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseEther } from 'ethers';
import { DEFAULT_ADDRESSES_FILE } from '@commons/chain';
import { DEVNET_GOVERNANCE, PRODUCTION_GOVERNANCE, type GovernanceOptions } from './deploy.ts';
import type { RpcDeployOptions } from './deploy-rpc.ts';
import { DEVNET_RPC_URL } from './devnet.ts';
import { resolveGenesis } from './genesis.ts';

export const DEPLOY_USAGE = `Deploy the Commons DAO (token, timelock, governor, model registry, policy, rewards).

Options (environment variable in brackets):
  --rpc <url>                 JSON-RPC endpoint [COMMONS_RPC_URL] (default ${DEVNET_RPC_URL})
  --key <hex>                 deployer private key [COMMONS_DEPLOYER_KEY] (devnet: dev account 0)
  --out <file>                addresses file [COMMONS_ADDRESSES] (default .commons/chain/addresses.json)
  --genesis-hash <sha256>     genesis checkpoint hash [COMMONS_GENESIS_HASH]
                              (default: "hash" of shared/genesis/commons-checkpoint.json)
  --genesis-uri <uri>         where the genesis weights live [COMMONS_GENESIS_URI] (default sha256:<hash>)
  --genesis-manifest <file>   JSON file to read the "hash" from
  --preset devnet|production  governance defaults (default: devnet on chain 31337, else production)
  --voting-delay <s>  --voting-period <s>  --quorum <percent>  --timelock-delay <s>
  --vote-extension <s>  --proposal-threshold <CMNS>   override one governance setting
  --coordinator <address>     coordinator role holder (default: the deployer)
  --round-budget <CMNS>       most tokens one round may pay (default 10000)
  --distribution <file>       JSON [{"account": "0x...", "amount": "<CMNS>"}] initial holders
  --dev-accounts <n>          devnet: fund and delegate the first n dev accounts (default 5)
  --fresh                     deploy even if the addresses file names a live deployment
  -h, --help`;

const options = {
  rpc: { type: 'string' },
  key: { type: 'string' },
  out: { type: 'string' },
  'genesis-hash': { type: 'string' },
  'genesis-uri': { type: 'string' },
  'genesis-manifest': { type: 'string' },
  preset: { type: 'string' },
  'voting-delay': { type: 'string' },
  'voting-period': { type: 'string' },
  quorum: { type: 'string' },
  'timelock-delay': { type: 'string' },
  'vote-extension': { type: 'string' },
  'proposal-threshold': { type: 'string' },
  coordinator: { type: 'string' },
  'round-budget': { type: 'string' },
  distribution: { type: 'string' },
  'dev-accounts': { type: 'string' },
  fresh: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses deploy flags; returns null when help was asked for. */
export async function parseDeployArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RpcDeployOptions | null> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) return null;
  const integer = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text))
      throw new Error(`--${flag} must be a non-negative integer, got ${text}`);
    return Number(text);
  };
  const preset: GovernanceOptions | undefined =
    values.preset === undefined
      ? undefined
      : values.preset === 'devnet'
        ? DEVNET_GOVERNANCE
        : values.preset === 'production'
          ? PRODUCTION_GOVERNANCE
          : (() => {
              throw new Error(`--preset must be devnet or production, got ${values.preset}`);
            })();
  const overrides: Partial<GovernanceOptions> = {};
  const set = <K extends keyof GovernanceOptions>(k: K, v: GovernanceOptions[K] | undefined) => {
    if (v !== undefined) overrides[k] = v;
  };
  set('votingDelay', integer('voting-delay', values['voting-delay']));
  set('votingPeriod', integer('voting-period', values['voting-period']));
  set('quorumPercent', integer('quorum', values.quorum));
  set('timelockDelay', integer('timelock-delay', values['timelock-delay']));
  set('voteExtension', integer('vote-extension', values['vote-extension']));
  if (values['proposal-threshold'] !== undefined) {
    overrides.proposalThreshold = parseEther(values['proposal-threshold']);
  }

  const genesis = await resolveGenesis({
    hash: values['genesis-hash'] ?? env['COMMONS_GENESIS_HASH'],
    uri: values['genesis-uri'] ?? env['COMMONS_GENESIS_URI'],
    manifestPath: values['genesis-manifest'],
  });
  const result: RpcDeployOptions = {
    rpcUrl: values.rpc ?? env['COMMONS_RPC_URL'] ?? DEVNET_RPC_URL,
    out: values.out ?? DEFAULT_ADDRESSES_FILE,
    genesis,
    reuse: !values.fresh,
    governance: { ...preset, ...overrides },
    log: (line) => console.log(line),
  };
  const key = values.key ?? env['COMMONS_DEPLOYER_KEY'];
  if (key) result.privateKey = key;
  if (values.coordinator) result.coordinator = values.coordinator;
  if (values['round-budget']) result.roundBudget = parseEther(values['round-budget']);
  const devAccounts = integer('dev-accounts', values['dev-accounts']);
  if (devAccounts !== undefined) result.devAccounts = devAccounts;
  if (values.distribution) {
    const holders = JSON.parse(readFileSync(values.distribution, 'utf8')) as {
      account: string;
      amount: string;
    }[];
    result.distribution = holders.map((h) => ({
      account: h.account,
      amount: parseEther(h.amount),
    }));
  }
  return result;
}
