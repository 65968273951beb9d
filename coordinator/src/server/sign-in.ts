// How one connection signs in and stays signed in. It holds exactly one SIWE challenge at a
// time, and each login attempt uses it up: a refused attempt is answered with a fresh one (so an
// honest retry on the same connection is possible), up to MAX_FAILED_SIGN_INS. A session lasts
// until its message's expiry, which the challenge caps at the server's session lifetime; shortly
// before that a new challenge goes out, and a client that does not sign it in time is closed
// when the session ends. A connection that never signs in is closed at its sign-in deadline,
// so an idle socket costs the server nothing for long.
import { randomBytes } from 'node:crypto';
import { type RejectCode, PROTOCOL_VERSION, type Challenge } from '@commons/shared/protocol';

/** Refused sign-ins one connection may make before it is closed (each costs a signature check). */
export const MAX_FAILED_SIGN_INS = 5;

export const DEFAULT_SESSION_TTL_MS = 60 * 60_000;
export const DEFAULT_SIGN_IN_TIMEOUT_MS = 30_000;

const STATEMENT = 'Sign in to the Commons federation coordinator to take part in training rounds.';
const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export interface SignInPolicy {
  publicUrl: string;
  chainId: number;
  /** The longest session one sign-in opens: every challenge offers exactly this window. */
  sessionTtlMs: number;
  /**
   * How long a client has to answer a challenge: a new connection before it is closed, a
   * session between its renewal challenge and its end.
   */
  signInTimeoutMs: number;
}

/** What the hub does for a connection: send it a challenge, or close it with a named reason. */
export interface SignInChannel {
  sendChallenge(challenge: Challenge): void;
  close(code: RejectCode, message: string): void;
}

/** A fresh challenge: a 16-character nonce and the window [now, now + session TTL]. */
export function newChallenge(policy: SignInPolicy, now: number = Date.now()): Challenge {
  const url = new URL(policy.publicUrl);
  const nonce = Array.from(randomBytes(16), (b) => NONCE_ALPHABET[b % NONCE_ALPHABET.length]).join(
    '',
  );
  return {
    protocolVersion: PROTOCOL_VERSION,
    domain: url.host,
    uri: url.origin,
    chainId: policy.chainId,
    nonce,
    statement: STATEMENT,
    issuedAt: new Date(now).toISOString(),
    expirationTime: new Date(now + policy.sessionTtlMs).toISOString(),
  };
}

export class ConnectionSignIn {
  readonly #policy: SignInPolicy;
  readonly #channel: SignInChannel;
  #challenge: Challenge;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;

  /** Sends the first challenge and starts the sign-in deadline. */
  constructor(policy: SignInPolicy, channel: SignInChannel) {
    this.#policy = policy;
    this.#channel = channel;
    this.#challenge = newChallenge(policy);
    channel.sendChallenge(this.#challenge);
    const seconds = policy.signInTimeoutMs / 1000;
    this.#schedule(policy.signInTimeoutMs, () =>
      channel.close('UNAUTHENTICATED', `no sign-in within ${seconds} s of connecting`),
    );
  }

  /**
   * The challenge one login attempt must answer. One challenge, one attempt: it is replaced at
   * once, so a second attempt (a replay, or one racing this) never sees it again.
   */
  takeChallenge(): Challenge {
    const current = this.#challenge;
    this.#challenge = newChallenge(this.#policy);
    return current;
  }

  /** An attempt was refused: the client gets the fresh challenge, or is closed after too many. */
  refused(): void {
    this.#failures += 1;
    if (this.#failures >= MAX_FAILED_SIGN_INS) {
      this.#channel.close(
        'BAD_LOGIN',
        `${this.#failures} refused sign-ins on this connection; connect again to retry`,
      );
      return;
    }
    this.#channel.sendChallenge(this.#challenge);
  }

  /**
   * An attempt succeeded: the session holds until `expiresAt` (Unix ms). A renewal challenge goes
   * out signInTimeoutMs before (or halfway, for a session shorter than twice that); signing it
   * in time starts the next session, otherwise the connection is closed at `expiresAt`.
   */
  signedIn(expiresAt: number, now: number = Date.now()): void {
    this.#failures = 0;
    const left = Math.max(0, expiresAt - now);
    const lead = Math.min(this.#policy.signInTimeoutMs, left / 2);
    const until = new Date(expiresAt).toISOString();
    this.#schedule(left - lead, () => {
      this.#challenge = newChallenge(this.#policy);
      this.#channel.sendChallenge(this.#challenge);
      this.#schedule(lead, () =>
        this.#channel.close(
          'UNAUTHENTICATED',
          `the session expired at ${until} and the renewal challenge was not signed`,
        ),
      );
    });
  }

  /** The connection is gone: nothing more is sent. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number, action: () => void): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(action, delayMs);
  }
}
