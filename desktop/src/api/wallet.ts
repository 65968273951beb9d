// wallet.*: the member's Ethereum account (an encrypted JSON keystore in the data folder), its
// governance tokens, voting power and delegation.
import { z } from 'zod';
import { method } from './define.ts';
import { addressSchema, noInput, type TxResult } from './schemas.ts';
import { passphraseSchema } from './vault.ts';

export interface WalletStatus {
  /** Whether a keystore exists in the data folder. */
  exists: boolean;
  unlocked: boolean;
  /** Known from the keystore even while locked. */
  address: string | null;
}

export interface WalletCreated extends WalletStatus {
  /**
   * The 12-word recovery phrase, returned once, at creation, for the member to write down; it is
   * never stored in the clear nor returned again.
   */
  mnemonic: string;
}

export interface AccountView {
  address: string;
  chainId: number;
  /** Token balance, base units (18 decimals), decimal string. */
  balance: string;
  /** Current voting power (tokens delegated to this account), base units. */
  votes: string;
  /** Whom this account delegates to; null when it never delegated (its tokens do not vote). */
  delegate: string | null;
  /** Native coin balance for gas, wei. */
  gasBalance: string;
}

const mnemonicSchema = z
  .string()
  .trim()
  .refine((s) => [12, 15, 18, 21, 24].includes(s.split(/\s+/).length), 'a 12-24 word phrase');
const privateKeySchema = z
  .string()
  .trim()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'a private key (64 hex characters)');

export const walletMethods = {
  'wallet.status': method<WalletStatus>()(
    noInput,
    'Whether a wallet exists and is unlocked, and its address.',
  ),
  'wallet.create': method<WalletCreated>()(
    z.strictObject({ passphrase: passphraseSchema }),
    'Creates a new account, encrypts it with the passphrase (scrypt keystore) and unlocks it; conflict if one exists.',
  ),
  'wallet.import': method<WalletStatus>()(
    z.discriminatedUnion('kind', [
      z.strictObject({
        kind: z.literal('privateKey'),
        privateKey: privateKeySchema,
        passphrase: passphraseSchema,
      }),
      z.strictObject({
        kind: z.literal('mnemonic'),
        mnemonic: mnemonicSchema,
        passphrase: passphraseSchema,
      }),
    ]),
    'Imports an account from a private key or recovery phrase and unlocks it; conflict if one exists.',
  ),
  'wallet.unlock': method<WalletStatus>()(
    z.strictObject({ passphrase: z.string().max(1024) }),
    'Decrypts the keystore; wrong-passphrase if it does not match.',
  ),
  'wallet.lock': method<WalletStatus>()(noInput, 'Forgets the decrypted key.'),
  'wallet.remove': method<WalletStatus>()(
    z.strictObject({ address: addressSchema }),
    'Deletes the keystore (the address must be repeated, as a confirmation); the account is lost unless its phrase or key was kept.',
  ),
  'wallet.account': method<AccountView>()(
    noInput,
    'Balance, voting power and delegate of the wallet, read from chain.',
  ),
  'wallet.delegate': method<TxResult & { delegate: string }>()(
    z.strictObject({ to: addressSchema.optional() }),
    'Delegates the voting power of the tokens to an address (the wallet itself when omitted); needs the wallet unlocked.',
  ),
};

export const walletEvents = {
  'wallet.changed': z.object({
    exists: z.boolean(),
    unlocked: z.boolean(),
    address: z.string().nullable(),
  }),
};
