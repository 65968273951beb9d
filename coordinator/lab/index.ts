// @commons/coordinator/lab: the experiments built on the coordinator, outside its runtime code:
// the simulated federation (a pool of contributor processes, the roles of the corpus split
// between them, the initial model, the charts) that the demo and the end-to-end tests reuse.
export * from './simulation/client-pool.ts';
export * from './simulation/init-model.ts';
export * from './simulation/roles.ts';
export * from './simulation/svg-chart.ts';
