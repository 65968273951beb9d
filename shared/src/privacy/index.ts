// @commons/shared/privacy: the two privacy mechanisms of federated training, transport-agnostic.
//   dp/      client-level DP-FedAvg (clipping, Gaussian noise, adaptive clipping), the RDP
//            accountant of the sampled Gaussian mechanism, the member's own privacy ledger
//   secagg/  SecAgg+ secure aggregation: client and server state machines, messages, parameters
// Other packages import privacy only from here.
export * from './dp/index.ts';
export * from './secagg/index.ts';
