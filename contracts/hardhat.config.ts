import { createRequire } from 'node:module';
import hardhatEthers from '@nomicfoundation/hardhat-ethers';
import { defineConfig } from 'hardhat/config';

// Hardhat downloads solc by default; these machines are offline. The `solc` npm package
// (pinned exactly in package.json) ships the compiler as WASM, which Hardhat loads from `path`.
const require = createRequire(import.meta.url);
const compiler = {
  version: '0.8.30',
  path: require.resolve('solc/soljson.js'),
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
  },
};

const simulated = { type: 'edr-simulated', chainType: 'l1', hardfork: 'cancun' } as const;

export default defineConfig({
  plugins: [hardhatEthers],
  solidity: {
    // The production profile is cloned from defaults unless given: keep it identical so the
    // exported bytecode is the same whichever profile built it.
    profiles: { default: compiler, production: compiler },
  },
  // The simulated chain must run the hardfork the compiler targets. `default` is the in-process
  // chain of tests and bench (`hre.network.create()`); `node` is the one `hardhat node` serves.
  networks: {
    default: simulated,
    node: simulated,
    localhost: { type: 'http', chainType: 'l1', url: 'http://127.0.0.1:8545' },
  },
});
