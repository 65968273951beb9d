// @commons/contracts: deploy the Commons DAO from code. The typed client lives in
// @commons/shared/chain (one client for coordinator, desktop and tests).
export {
  DEFAULT_POLICY,
  DEVNET_GOVERNANCE,
  PRODUCTION_GOVERNANCE,
  deployCommons,
  type DeployOptions,
  type GovernanceOptions,
} from './deploy.ts';
export { GENESIS_MANIFEST_PATH, defaultGenesisUri, resolveGenesis } from './genesis.ts';
export {
  DEV_ACCOUNT_KEYS,
  DEVNET_CHAIN_ID,
  DEVNET_RPC_URL,
  probeChain,
  startHardhatNode,
} from './devnet.ts';
export { deployToRpc, type RpcDeployOptions } from './deploy-rpc.ts';
export { freePort, startDevnet, type Devnet } from './local-devnet.ts';
