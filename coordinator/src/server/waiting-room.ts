// Connections that have not signed in yet, counted per remote address. Each costs a socket and a
// timer until its sign-in deadline, so one address may hold only so many at once; more are
// refused at the handshake, before a challenge is made for them. The address is the TCP peer's
// (socket.handshake.address): behind a reverse proxy every client shares the proxy's, so raise
// the cap there rather than trust a forwarded header any client can write.
import type { Socket } from 'socket.io';

export const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS = 256;

export class WaitingRoom {
  readonly max: number;
  readonly #count = new Map<string, number>();
  /** Each waiting socket and the address it is counted under. */
  readonly #inside = new Map<Socket, string>();

  constructor(max: number) {
    this.max = max;
  }

  /**
   * Counts `socket` as waiting, or returns false when its address already has `max` waiting.
   * It leaves on leave(), or by itself when its connection closes (even before Socket.IO
   * announces it, so a handshake that never completes is not counted forever).
   */
  enter(socket: Socket): boolean {
    const address = socket.handshake.address;
    const count = this.#count.get(address) ?? 0;
    if (count >= this.max) return false;
    this.#count.set(address, count + 1);
    this.#inside.set(socket, address);
    socket.conn.once('close', () => this.leave(socket));
    return true;
  }

  /** `socket` signed in or went away; a second call does nothing. */
  leave(socket: Socket): void {
    const address = this.#inside.get(socket);
    if (address === undefined) return;
    this.#inside.delete(socket);
    const count = (this.#count.get(address) ?? 1) - 1;
    if (count === 0) this.#count.delete(address);
    else this.#count.set(address, count);
  }

  /** Connections from `address` waiting to sign in now. */
  waiting(address: string): number {
    return this.#count.get(address) ?? 0;
  }
}
