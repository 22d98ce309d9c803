// Shared fixtures for the ecdsa2p tests: ring-Pedersen parameters from checked-in safe primes, a deposit keygen
// and a signing run driven through both parties, and error matchers.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { KeyGenSeShare } from "../../../proto/gen/ecdsa2p.ts";
import {
  type PartyOneKey,
  type PartyTwoKey,
  p1KeyGenCommit,
  p1KeyGenFinish,
  p1SignFinish,
  p1SignStart,
  p2KeyGenFinish,
  p2KeyGenShare,
  p2SignCommit,
  p2SignFinish,
  p2SignPartial,
  RingPedersenCache,
  type RingPedersenKey,
} from "../../../protocol/ecdsa2p/index.ts";
import { generatePaillierKey, type PaillierKey } from "../../../protocol/ecdsa2p/paillier.ts";
import { ringPedersenFromPrimes } from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { systemRng } from "../../../protocol/rng.ts";

export const rng = systemRng;
export const sid = (): Uint8Array => rng(16);

const primes = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures/ring-pedersen-primes.json"), "utf8"),
);
export const safePrimes = { p: BigInt(`0x${primes.p}`), q: BigInt(`0x${primes.q}`) };

let rp: RingPedersenKey | undefined;
/** The owner's ring-Pedersen parameters (built once per test file). */
export function ringPedersen(): RingPedersenKey {
  rp ??= ringPedersenFromPrimes(safePrimes.p, safePrimes.q, rng);
  return rp;
}

/** A ProtocolError matcher for assert.throws / assert.rejects. */
export const code = (c: string) => (e: unknown) => {
  if (e instanceof ProtocolError && e.code === c) return true;
  throw e;
};

export const cache = new RingPedersenCache();

export interface Deposit {
  p1: PartyOneKey;
  p2: PartyTwoKey;
  seShare: KeyGenSeShare;
  sessionId: Uint8Array;
}

/** A deposit keygen through both parties, optionally with a given Paillier key and a tampering hook. */
export async function deposit(
  opts: {
    paillier?: PaillierKey;
    tamper?: (m: KeyGenSeShare, p1: PartyOneKey, sessionId: Uint8Array) => void;
  } = {},
): Promise<Deposit> {
  const sessionId = sid();
  const paillier = opts.paillier ?? (await generatePaillierKey({ rng }));
  const one = p1KeyGenCommit({ sessionId, rng, paillier });
  const two = p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: ringPedersen(), rng });
  const { key, msg } = await p1KeyGenFinish(one.state, two.msg, { rng, ringPedersenCache: cache });
  opts.tamper?.(msg, key, sessionId);
  return { p1: key, p2: p2KeyGenFinish(two.state, msg), seShare: msg, sessionId };
}

/** Both parties sign `digest`; returns the owner's checked result. */
export function sign(p1: PartyOneKey, p2: PartyTwoKey, digest: Uint8Array) {
  const sessionId = sid();
  const c = p2SignCommit(p2, { sessionId, digest, rng });
  const s = p1SignStart(p1, { sessionId, digest, ownerCommit: c.msg, rng });
  const partial = p2SignPartial(p2, c.state, s.msg, { rng });
  const sig = p1SignFinish(p1, s.session, partial);
  return { sig, ...p2SignFinish(p2, c.state, sig) };
}
