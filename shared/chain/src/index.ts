// The typed Commons contract client and what it speaks in (see client.ts).
export { commonsAbis, type CommonsContractKey } from './abi.ts';
export * from './addresses.ts';
export * from './client.ts';
export * from './governance.ts';
export * from './policy.ts';
export * from './registry.ts';
export * from './rewards.ts';
export * from './merkle.ts';
