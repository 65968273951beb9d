// @commons/shared/contributor: the contributor's side of federated training, as a library (the
// Socket.IO client, the verified base-model download, the local update, the SecAgg+ participant).
// The `commons` command line (cli/, started by bin/commons.ts) is built on it and is not a
// library: nothing imports it.
export * from './federation/index.ts';
export * from './federation/secagg-participant.ts';
