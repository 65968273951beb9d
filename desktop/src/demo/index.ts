// @commons/desktop/demo: the lifecycle demo (npm run demo) and the steps of it that the
// end-to-end tests in test/ drive one by one: a governance proposal carried through to
// execution, and a member answering with the model the chain says is active.
export { DEMO_DEFAULTS, runDemo, type DemoOptions } from './demo.ts';
export {
  TxLog,
  advanceDevnet,
  runProposal,
  type Ballot,
  type ProposalRun,
  type TxRecord,
} from './governance.ts';
export { replyWithActiveModel, type MemberReply } from './member.ts';
export { GENESIS_DIR, readBaseCheckpoint, resolveBase } from './base.ts';
