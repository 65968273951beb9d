// The Hardhat config of the stack's local chain (see chain-journal.ts for why it exists).
import { defineConfig } from 'hardhat/config';

const initialDate = process.env.COMMONS_CHAIN_GENESIS_DATE;
export default defineConfig({
  paths: { cache: process.env.COMMONS_CHAIN_CACHE_DIR ?? '.commons-hardhat-cache' },
  networks: {
    node: {
      type: 'edr-simulated',
      chainType: 'l1',
      hardfork: 'cancun',
      ...(initialDate ? { initialDate } : {}),
    },
  },
});
