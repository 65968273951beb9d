// wallet.*: one account per data folder, kept as a standard encrypted JSON keystore (scrypt +
// AES-128-CTR, as ethers, geth and MetaMask write them) in <data>/wallet/keystore.json. The
// decrypted key lives only in memory while unlocked.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HDNodeWallet,
  Wallet,
  encryptKeystoreJson,
  getAddress,
  isError,
  type KeystoreAccount,
} from 'ethers';
import { ApiError, type Handlers } from '../../api/define.ts';
import type { walletMethods, WalletStatus } from '../../api/wallet.ts';
import type { ChainConnection } from '../chain/chain-connection.ts';
import { chainError } from '../errors.ts';
import type { CoreEvents } from '../events.ts';
import { readIfExists, writeFileAtomic } from '@commons/shared/engine';
import { Serial } from '../storage/serial.ts';

export interface WalletOptions {
  /** scrypt cost of new keystores, log2 N: 17 (ethers' and geth's default) unless lowered, never below 15. */
  scryptLogN?: number | undefined;
}

export class WalletService {
  readonly #file: string;
  readonly #chain: ChainConnection;
  readonly #events: CoreEvents;
  readonly #logN: number;
  readonly #serial = new Serial();
  #wallet: Wallet | HDNodeWallet | null = null;

  constructor(
    dataDir: string,
    chain: ChainConnection,
    events: CoreEvents,
    options: WalletOptions = {},
  ) {
    this.#file = join(dataDir, 'wallet', 'keystore.json');
    this.#chain = chain;
    this.#events = events;
    this.#logN = Math.max(15, options.scryptLogN ?? 17);
  }

  /** The unlocked account; locked otherwise. */
  signer(): Wallet | HDNodeWallet {
    if (!this.#wallet) throw new ApiError('locked', 'the wallet is locked: unlock it first');
    return this.#wallet;
  }

  get address(): string | null {
    return this.#wallet?.address ?? null;
  }

  async #keystore(): Promise<{ json: string; address: string } | null> {
    const bytes = await readIfExists(this.#file);
    if (bytes === undefined) return null;
    const json = bytes.toString('utf8');
    try {
      const { address } = JSON.parse(json) as { address?: string };
      return { json, address: getAddress(address?.startsWith('0x') ? address : `0x${address}`) };
    } catch {
      throw new ApiError('integrity', `${this.#file} is not a keystore`);
    }
  }

  async status(): Promise<WalletStatus> {
    const keystore = await this.#keystore();
    return {
      exists: keystore !== null,
      unlocked: this.#wallet !== null,
      address: keystore?.address ?? null,
    };
  }

  async #changed(): Promise<WalletStatus> {
    const status = await this.status();
    this.#events.emit('wallet.changed', status);
    return status;
  }

  async #store(wallet: Wallet | HDNodeWallet, passphrase: string): Promise<void> {
    if (await this.#keystore())
      throw new ApiError('conflict', 'a wallet already exists in this data folder');
    const account: KeystoreAccount = { address: wallet.address, privateKey: wallet.privateKey };
    if (wallet instanceof HDNodeWallet && wallet.mnemonic) {
      account.mnemonic = {
        entropy: wallet.mnemonic.entropy,
        path: wallet.path ?? undefined,
        locale: 'en',
      };
    }
    const json = await encryptKeystoreJson(account, passphrase, { scrypt: { N: 2 ** this.#logN } });
    await writeFileAtomic(this.#file, json);
    this.#wallet = wallet;
  }

  handlers(): Handlers<typeof walletMethods> {
    return {
      'wallet.status': () => this.status(),
      'wallet.create': ({ passphrase }) =>
        this.#serial.run(async () => {
          const wallet = Wallet.createRandom();
          await this.#store(wallet, passphrase);
          const status = await this.#changed();
          return { ...status, mnemonic: wallet.mnemonic!.phrase };
        }),
      'wallet.import': (input) =>
        this.#serial.run(async () => {
          let wallet: Wallet | HDNodeWallet;
          try {
            wallet =
              input.kind === 'privateKey'
                ? new Wallet(
                    input.privateKey.startsWith('0x') ? input.privateKey : `0x${input.privateKey}`,
                  )
                : HDNodeWallet.fromPhrase(input.mnemonic.split(/\s+/).join(' '));
          } catch {
            // The library's message may quote the input: say only what was wrong with it.
            throw new ApiError(
              'invalid-argument',
              input.kind === 'privateKey'
                ? 'not a valid private key'
                : 'not a valid recovery phrase (check the words and their order)',
            );
          }
          await this.#store(wallet, input.passphrase);
          return this.#changed();
        }),
      'wallet.unlock': ({ passphrase }) =>
        this.#serial.run(async () => {
          const keystore = await this.#keystore();
          if (!keystore)
            throw new ApiError('not-found', 'there is no wallet yet: create or import one');
          if (this.#wallet) return this.status();
          try {
            this.#wallet = await Wallet.fromEncryptedJson(keystore.json, passphrase);
          } catch (err) {
            if (
              isError(err, 'INVALID_ARGUMENT') &&
              err.shortMessage.includes('incorrect password')
            ) {
              throw new ApiError('wrong-passphrase', 'wrong passphrase');
            }
            throw new ApiError(
              'integrity',
              `${this.#file} could not be decrypted (damaged keystore)`,
            );
          }
          return this.#changed();
        }),
      'wallet.lock': () =>
        this.#serial.run(async () => {
          this.#wallet = null;
          return this.#changed();
        }),
      'wallet.remove': ({ address }) =>
        this.#serial.run(async () => {
          const keystore = await this.#keystore();
          if (!keystore) throw new ApiError('not-found', 'there is no wallet');
          if (getAddress(address) !== keystore.address) {
            throw new ApiError(
              'invalid-argument',
              `the wallet's address is ${keystore.address}, not ${address}`,
            );
          }
          this.#wallet = null;
          await rm(this.#file);
          return this.#changed();
        }),
      'wallet.account': async () => {
        const keystore = await this.#keystore();
        if (!keystore)
          throw new ApiError('not-found', 'there is no wallet yet: create or import one');
        const chain = await this.#chain.reader();
        try {
          const [balance, votes, delegate, gas] = await Promise.all([
            chain.balanceOf(keystore.address),
            chain.votes(keystore.address),
            chain.delegates(keystore.address),
            chain.provider.getBalance(keystore.address),
          ]);
          return {
            address: keystore.address,
            chainId: chain.addresses.chainId,
            balance: balance.toString(),
            votes: votes.toString(),
            delegate: /^0x0{40}$/.test(delegate) ? null : getAddress(delegate),
            gasBalance: gas.toString(),
          };
        } catch (err) {
          throw chainError(err, 'reading the account');
        }
      },
      'wallet.delegate': async ({ to }) => {
        const chain = await this.#chain.writer(this.signer());
        const delegate = getAddress(to ?? this.signer().address);
        try {
          const receipt = await chain.delegate(delegate);
          return { txHash: receipt.hash, blockNumber: receipt.blockNumber, delegate };
        } catch (err) {
          throw chainError(err, 'delegating');
        }
      },
    };
  }
}
