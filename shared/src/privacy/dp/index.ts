// Differential privacy for federated training: client-level DP-FedAvg (clipping, central or
// split Gaussian noise, adaptive clipping), the RDP accountant of the sampled Gaussian
// mechanism, and the member's own privacy ledger.
export type { PrivacyErrorCode } from './errors.ts';
export { PrivacyError } from './errors.ts';
export { logErfc } from './log-erfc.ts';
export type { PrivacySpent, RdpOptions, SampledGaussian } from './rdp.ts';
export { DEFAULT_ORDERS, computeRdp, rdpOneStep, rdpToEpsilon } from './rdp.ts';
export type { AccountantHistoryEntry, AccountantStep, RdpAccountantState } from './accountant.ts';
export { RdpAccountant } from './accountant.ts';
export type { ClipResult } from './clip.ts';
export { clipToNorm, l2Norm } from './clip.ts';
export type { RandomSource } from './random.ts';
export { CryptoRandomSource, seededRandomSource, uniform53 } from './random.ts';
export { GaussianSampler, addGaussianNoise } from './gaussian.ts';
export type { NoiseCalibration } from './calibration.ts';
export { centralNoiseStddev, splitNoiseStddev, survivingNoiseMultiplier } from './calibration.ts';
export type { AdaptiveClippingConfig, AdaptiveClippingState, ClipUpdate } from './adaptive-clip.ts';
export { AdaptiveClipper, splitNoiseMultiplier } from './adaptive-clip.ts';
export type { LedgerCheck, LedgerEntry, LedgerRound } from './ledger.ts';
export { PrivacyLedger } from './ledger.ts';
