// The non-IID federated split of LEAF's Shakespeare benchmark (Caldas et al. 2018): each speaking
// role is one device's data. In tinyshakespeare a speech starts with a `NAME:` line after a blank
// line; every speech of a name is that role's text. Only the training part of the corpus (the
// first 90%, splitText's train) is ever parsed: the held-out tail is what the coordinator scores
// candidates on, so no client may hold a character of it.
import { Rng } from '@commons/shared/engine';

export interface Role {
  name: string;
  /** The role's speeches, each with its `NAME:` line, in corpus order, joined by blank lines. */
  text: string;
  speeches: number;
}

export interface ClientShard {
  /** Roles held, largest first. */
  roles: string[];
  text: string;
}

/** A speaker line: a capitalised name of letters, spaces, apostrophes, dots or hyphens, then ':'. */
const SPEAKER_LINE = /^[A-Z][A-Za-z' .&-]*:$/;

/**
 * The speaking roles of a text, largest first (ties by name). Lines before the first speaker
 * line belong to nobody and are left out; a speech ends where the next one starts, so the
 * last speech of a cut text is kept as far as the text goes.
 */
export function parseRoles(text: string): Role[] {
  const speeches = new Map<string, string[]>();
  let speaker: string | null = null;
  let lines: string[] = [];
  const flush = () => {
    if (speaker === null) return;
    const speech = lines.join('\n').trimEnd();
    const list = speeches.get(speaker) ?? [];
    list.push(speech);
    speeches.set(speaker, list);
  };
  let previousBlank = true;
  for (const line of text.split('\n')) {
    if (previousBlank && SPEAKER_LINE.test(line)) {
      flush();
      speaker = line.slice(0, -1);
      lines = [line];
    } else if (speaker !== null) {
      lines.push(line);
    }
    previousBlank = line.trim() === '';
  }
  flush();
  return [...speeches]
    .map(([name, list]) => ({ name, text: list.join('\n\n'), speeches: list.length }))
    .sort((a, b) => b.text.length - a.text.length || (a.name < b.name ? -1 : 1));
}

/**
 * Deals whole roles to `clients` devices: largest role first, each to the device holding the
 * least text so far (longest-processing-time scheduling), so every device gets at least one
 * role and the smallest device is as large as whole roles allow. Ties between equally loaded
 * devices are broken by a permutation drawn from `seed`, so the same seed gives the same split
 * and another seed another one.
 */
export function assignRoles(roles: readonly Role[], clients: number, seed: number): ClientShard[] {
  if (!Number.isInteger(clients) || clients < 1) {
    throw new RangeError(`clients must be a positive whole number, got ${clients}`);
  }
  if (roles.length < clients) {
    throw new RangeError(
      `${clients} clients need at least as many speaking roles; the text has ${roles.length}`,
    );
  }
  const rng = new Rng(seed);
  // Fisher–Yates: order[k] is the device that wins the k-th tie.
  const order = Array.from({ length: clients }, (_, i) => i);
  for (let i = clients - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const rank = new Int32Array(clients);
  order.forEach((device, k) => (rank[device] = k));
  const sorted = [...roles].sort(
    (a, b) => b.text.length - a.text.length || (a.name < b.name ? -1 : 1),
  );
  const held: Role[][] = Array.from({ length: clients }, () => []);
  const size = new Float64Array(clients);
  for (const role of sorted) {
    let best = 0;
    for (let i = 1; i < clients; i++) {
      if (size[i]! < size[best]! || (size[i] === size[best] && rank[i]! < rank[best]!)) best = i;
    }
    held[best]!.push(role);
    size[best]! += role.text.length;
  }
  return held.map((list) => ({
    roles: list.map((r) => r.name),
    text: list.map((r) => r.text).join('\n\n'),
  }));
}
