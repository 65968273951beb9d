// Sign-In with Ethereum (EIP-4361): the client proves it controls an address by signing a
// human-readable message that names this coordinator, a one-time nonce and an expiry. We
// format and parse the message ourselves, exactly to the EIP's grammar (the parts we use),
// and recover the signer with ethers' EIP-191 verifyMessage.
import { getAddress, verifyMessage, type Signer } from 'ethers';
import { ProtocolError } from './errors.ts';
import type { Challenge } from './messages.ts';

export interface SiweFields {
  domain: string;
  /** EIP-55 checksummed. */
  address: string;
  statement: string;
  uri: string;
  version: '1';
  chainId: number;
  nonce: string;
  issuedAt: string;
  expirationTime: string;
}

const PREAMBLE = ' wants you to sign in with your Ethereum account:';

export function formatSiweMessage(fields: SiweFields): string {
  return [
    `${fields.domain}${PREAMBLE}`,
    fields.address,
    '',
    fields.statement,
    '',
    `URI: ${fields.uri}`,
    `Version: ${fields.version}`,
    `Chain ID: ${fields.chainId}`,
    `Nonce: ${fields.nonce}`,
    `Issued At: ${fields.issuedAt}`,
    `Expiration Time: ${fields.expirationTime}`,
  ].join('\n');
}

const MESSAGE = new RegExp(
  [
    `^(?<domain>[^\\s/]+)${PREAMBLE}`,
    '(?<address>0x[0-9a-fA-F]{40})',
    '',
    '(?<statement>[^\\n]*)',
    '',
    'URI: (?<uri>\\S+)',
    'Version: (?<version>1)',
    'Chain ID: (?<chainId>[0-9]+)',
    'Nonce: (?<nonce>[A-Za-z0-9]{8,})',
    'Issued At: (?<issuedAt>\\S+)',
    'Expiration Time: (?<expirationTime>\\S+)$',
  ].join('\\n'),
);

/** RFC 3339 `date-time`: full date, full time, optional fraction, Z or a numeric offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** The fields of a message, or a BAD_LOGIN error naming what does not parse. */
export function parseSiweMessage(text: string): SiweFields {
  const match = MESSAGE.exec(text);
  const groups = match?.groups;
  if (!groups)
    throw new ProtocolError('BAD_LOGIN', 'not an EIP-4361 Sign-In with Ethereum message');
  const address = groups['address'] as string;
  // EIP-4361 requires the EIP-55 checksum: getAddress accepts all-lowercase, so compare.
  let checksummed: string;
  try {
    checksummed = getAddress(address);
  } catch {
    throw new ProtocolError('BAD_LOGIN', `address ${address} has a bad EIP-55 checksum`);
  }
  if (checksummed !== address) {
    throw new ProtocolError('BAD_LOGIN', `address ${address} is not EIP-55 checksummed`);
  }
  for (const stamp of ['issuedAt', 'expirationTime'] as const) {
    const text = groups[stamp] as string;
    // Date.parse alone takes "2001" or "Tue Mar 01 2001": hold the EIP to its grammar.
    if (!RFC3339.test(text) || Number.isNaN(Date.parse(text))) {
      throw new ProtocolError('BAD_LOGIN', `${stamp} is not an RFC 3339 date-time`);
    }
  }
  return {
    domain: groups['domain'] as string,
    address,
    statement: groups['statement'] as string,
    uri: groups['uri'] as string,
    version: '1',
    chainId: Number(groups['chainId']),
    nonce: groups['nonce'] as string,
    issuedAt: groups['issuedAt'] as string,
    expirationTime: groups['expirationTime'] as string,
  };
}

/** The message a client signs for a challenge. */
export function siweMessageFor(challenge: Challenge, address: string): string {
  return formatSiweMessage({
    domain: challenge.domain,
    address: getAddress(address),
    statement: challenge.statement,
    uri: challenge.uri,
    version: '1',
    chainId: challenge.chainId,
    nonce: challenge.nonce,
    issuedAt: challenge.issuedAt,
    expirationTime: challenge.expirationTime,
  });
}

/** Signs in: the message and its EIP-191 signature, ready for `auth:login`. */
export async function signChallenge(
  challenge: Challenge,
  signer: Signer,
): Promise<{ message: string; signature: string }> {
  const message = siweMessageFor(challenge, await signer.getAddress());
  return { message, signature: await signer.signMessage(message) };
}

/**
 * How far a message's `Issued At` may lie outside what the server's clock allows. EIP-4361
 * clients stamp it with their own clock, so it may run a little ahead of ours or, on a slow
 * signer, start a little before the challenge went out; anything further is a window the client
 * chose for itself.
 */
export const SIWE_CLOCK_SKEW_MS = 30_000;

/** What a verified login proves: who signed in, and until when the session holds. */
export interface SiweSession {
  /** EIP-55 checksummed. */
  address: string;
  /** Unix ms: the message's `Expiration Time`, never later than the challenge's. */
  expiresAt: number;
}

/**
 * The session a login opens, after checking that the message answers exactly this challenge
 * (domain, URI, chain, nonce), was signed by the address it names, and keeps to the validity
 * window the server offered: issued no earlier than the challenge and no later than now (each
 * within SIWE_CLOCK_SKEW_MS), not yet expired, and expiring no later than the challenge does.
 * The challenge's own window is the server's session lifetime, so a client cannot sign itself a
 * longer one.
 */
export function verifySiweSession(
  challenge: Challenge,
  message: string,
  signature: string,
  now: number = Date.now(),
): SiweSession {
  const fields = parseSiweMessage(message);
  const mismatch = (['domain', 'uri', 'chainId', 'nonce'] as const).find(
    (key) => fields[key] !== challenge[key],
  );
  if (mismatch !== undefined) {
    throw new ProtocolError(
      'BAD_LOGIN',
      `the message's ${mismatch} does not match this server's challenge`,
    );
  }
  const issuedAt = Date.parse(fields.issuedAt);
  const expiresAt = Date.parse(fields.expirationTime);
  const offeredFrom = Date.parse(challenge.issuedAt);
  const offeredUntil = Date.parse(challenge.expirationTime);
  if (issuedAt > now + SIWE_CLOCK_SKEW_MS) {
    throw new ProtocolError(
      'BAD_LOGIN',
      `the message is issued at ${fields.issuedAt}, in the future by this server's clock (${new Date(now).toISOString()})`,
    );
  }
  if (issuedAt < offeredFrom - SIWE_CLOCK_SKEW_MS) {
    throw new ProtocolError(
      'BAD_LOGIN',
      `the message is issued at ${fields.issuedAt}, before its nonce was (${challenge.issuedAt})`,
    );
  }
  if (expiresAt <= now) {
    throw new ProtocolError('BAD_LOGIN', 'the sign-in message has expired; sign the new challenge');
  }
  if (expiresAt > offeredUntil) {
    throw new ProtocolError(
      'BAD_LOGIN',
      `the message expires at ${fields.expirationTime}, after the ${challenge.expirationTime} this server offers`,
    );
  }
  let signer: string;
  try {
    signer = verifyMessage(message, signature);
  } catch {
    throw new ProtocolError('BAD_LOGIN', 'the signature is malformed');
  }
  if (signer !== fields.address) {
    throw new ProtocolError('BAD_LOGIN', `the signature is not ${fields.address}'s`);
  }
  return { address: fields.address, expiresAt };
}

/** The address a login proves (verifySiweSession, without the session's end). */
export function verifySiweLogin(
  challenge: Challenge,
  message: string,
  signature: string,
  now: number = Date.now(),
): string {
  return verifySiweSession(challenge, message, signature, now).address;
}
