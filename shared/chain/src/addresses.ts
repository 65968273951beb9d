// The addresses file: where a Commons deployment lives. Written by the contracts deploy command
// (and deployCommons), read by the coordinator, the desktop and the tests.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address (0x + 40 hex)');
const bytes32 = z.string().regex(/^0x[0-9a-f]{64}$/, 'a bytes32 (0x + 64 lowercase hex)');
const seconds = z.number().int().nonnegative();

export const commonsAddressesSchema = z.object({
  chainId: z.number().int().positive(),
  deployer: address,
  /** Block of the first deployment transaction: where event queries start. */
  deployBlock: z.number().int().nonnegative(),
  deployedAt: z.string(),
  contracts: z.object({
    token: address,
    timelock: address,
    governor: address,
    modelRegistry: address,
    federationPolicy: address,
    contributionRewards: address,
  }),
  genesis: z.object({ hash: bytes32, uri: z.string().min(1) }),
  /** The settings the system was deployed with (governance may change them later). */
  governance: z.object({
    votingDelay: seconds,
    votingPeriod: seconds,
    quorumPercent: z.number().int().min(0).max(100),
    timelockDelay: seconds,
    voteExtension: seconds,
    /** Decimal string of token base units (18 decimals). */
    proposalThreshold: z.string().regex(/^\d+$/),
  }),
});

export type CommonsAddresses = z.infer<typeof commonsAddressesSchema>;

/**
 * Where the local devnet's addresses file lives unless told otherwise (`COMMONS_ADDRESSES`
 * overrides it): `.commons/chain/addresses.json` at the repository root.
 */
export const DEFAULT_ADDRESSES_FILE =
  process.env['COMMONS_ADDRESSES'] ??
  fileURLToPath(new URL('../../../.commons/chain/addresses.json', import.meta.url));

/** Reads and validates an addresses file. */
export async function readAddressesFile(
  file: string = DEFAULT_ADDRESSES_FILE,
): Promise<CommonsAddresses> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new Error(
      `No Commons addresses file at ${file} (deploy first: npm run deploy -w contracts)`,
      {
        cause,
      },
    );
  }
  return parseAddresses(JSON.parse(text), file);
}

/** Validates an addresses object (e.g. one received over the wire). */
export function parseAddresses(value: unknown, source = 'addresses'): CommonsAddresses {
  const result = commonsAddressesSchema.safeParse(value);
  if (!result.success) {
    throw new Error(`Invalid Commons ${source}: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}

/** Writes an addresses file (creating its folder). */
export async function writeAddressesFile(file: string, addresses: CommonsAddresses): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(parseAddresses(addresses), null, 2) + '\n');
}
