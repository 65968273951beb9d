// SecAgg+ (Bonawitz et al. 2017 over the sparse graph of Bell et al. 2020): the client and
// server state machines, their messages, and the parameters. Transport-agnostic: the
// coordinator carries the messages over Socket.IO.
export { SecAggClient, type SecAggClientOptions } from './client.ts';
export {
  SecAggServer,
  type SecAggFault,
  type SecAggParticipant,
  type SecAggResult,
  type SecAggServerOptions,
  type ServerStage,
} from './server.ts';
export {
  SECAGG_DEFAULTS,
  chooseNumShares,
  majorityThreshold,
  resolveSecAggConfig,
  validateSecAggConfig,
  type SecAggConfig,
  type SecAggSettings,
} from './config.ts';
export { SECAGG_ERROR_CODES, SecAggError, type SecAggErrorCode } from './errors.ts';
export type { SecAggSigner } from './keys.ts';
export { quantizationErrorBound } from './quantization.ts';
export { MaskThread, parallelFold } from './mask-thread.ts';
export * from './messages.ts';
