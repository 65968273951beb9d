// The one connection to the chain the core keeps: a read-only CommonsClient built from the
// settings (RPC URL and deployment), rebuilt when they change, and the same client with the
// unlocked wallet as signer for transactions.
import type { Signer } from 'ethers';
import { CommonsClient, parseAddresses, readAddressesFile } from '@commons/chain';
import { errorMessage } from '@commons/shared/errors';
import { ApiError } from '../../api/define.ts';
import type { SettingsService } from '../settings/settings-service.ts';
import { chainError } from '../errors.ts';

export class ChainConnection {
  readonly #settings: SettingsService;
  #client: Promise<CommonsClient> | null = null;

  constructor(settings: SettingsService) {
    this.#settings = settings;
    settings.onChange((next, prev) => {
      if (
        next.rpcUrl !== prev.rpcUrl ||
        JSON.stringify(next.addresses) !== JSON.stringify(prev.addresses)
      ) {
        this.close();
      }
    });
  }

  /** The read-only client; unavailable when no deployment is configured or the chain is down. */
  async reader(): Promise<CommonsClient> {
    if (!this.#client) {
      const attempt = this.#connect();
      this.#client = attempt;
      // A failed attempt is not kept: the next call tries again (the chain may be back).
      attempt.catch(() => {
        if (this.#client === attempt) this.#client = null;
      });
    }
    return this.#client;
  }

  /** The same deployment with `signer` sending transactions. */
  async writer(signer: Signer): Promise<CommonsClient> {
    const reader = await this.reader();
    return reader.withSigner(signer.connect(reader.provider));
  }

  async #connect(): Promise<CommonsClient> {
    const { rpcUrl, addresses } = this.#settings.current;
    if (addresses === null) {
      throw new ApiError(
        'unavailable',
        'no Commons deployment is configured: set the addresses in settings',
      );
    }
    let deployment;
    try {
      deployment =
        typeof addresses === 'string'
          ? await readAddressesFile(addresses)
          : parseAddresses(addresses);
    } catch (err) {
      throw new ApiError(
        'invalid-argument',
        `the configured deployment is unusable: ${errorMessage(err)}`,
      );
    }
    try {
      return await CommonsClient.connect({ rpcUrl, addresses: deployment });
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('Chain id mismatch')) {
        throw new ApiError('invalid-argument', err.message);
      }
      throw chainError(err, `connecting to ${rpcUrl}`);
    }
  }

  close(): void {
    const client = this.#client;
    this.#client = null;
    void client?.then((c) => c.destroy()).catch(() => undefined);
  }
}
