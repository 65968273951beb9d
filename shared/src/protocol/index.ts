// The federation wire protocol: typed Socket.IO events, message schemas, refusal codes,
// Sign-In with Ethereum, signed update commitments (plain and SecAgg+-masked) and upload framing.
export * from './errors.ts';
export * from './messages.ts';
export type * from './events.ts';
export * from './siwe.ts';
export * from './commitment.ts';
export * from './masked-commitment.ts';
export * from './upload.ts';
