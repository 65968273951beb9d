// @commons/coordinator: run a federated-learning coordinator inside another process (the demo,
// the stack, end-to-end tests) and score a candidate model the way it does. The server itself
// starts from bin/commons-coordinator.ts; its rounds, strategies and stores are not a library.
export { startCoordinator, type Coordinator } from './coordinator.ts';
export {
  ConfigError,
  coordinatorConfigSchema,
  type CoordinatorConfig,
  type CoordinatorConfigInput,
} from './config.ts';
export { CandidateEvaluator, type EvaluatorOptions } from './rounds/evaluator.ts';
