// @commons/shared/bench: the shared package's benchmarks that other packages' bench runners
// include in their tables (the coordinator's privacy bench runs the SecAgg+ one).
export * from './secagg.ts';
